"""The assembled twin: a config turned into a seeded market, engine and population of scripted agents.

It sits above both `sim` (the market and its engine) and `agents` (the strategies that play it), which know nothing
of each other; every entry point and the RL env build their runs here (docs/architecture.md, "Layers").
"""
