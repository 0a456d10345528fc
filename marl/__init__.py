"""Multi-agent RL over the twin: the PettingZoo env (learning agents among scripted ones) and the RLlib wiring.

Sits above `twin` (it builds a fresh seeded market per episode) and below `experiments`; see docs/architecture.md
("Layers"). Modules by concern: `heads` (roles and their action heads), `config` (the `env` section), `counters`
(per-account round counters and the rates read from them), `episode` (one episode's running totals and rewards),
`observations` (features from the public record and the agent's own state), `env` (the `ParallelEnv`), `rllib`
(RLlib's `MultiAgentEnv`, mappings, metrics callback, checkpoints, restored policies).
"""
