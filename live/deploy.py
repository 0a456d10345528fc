"""Deploy the contracts from a twin mechanism config and write a deployment file.

    python -m live.deploy mechanism=<preset|searched> chain=embedded|anvil [market=default] [searchpath=<dir>]
                          [out=deployment.json] [state=<anvil state file>] [accounts=N]

`mechanism` names a preset of configs/mechanism/ or, with `searchpath=<sweep dir>`, the `searched.yaml` an
`experiments.search` run wrote (deployed unchanged). A mechanism the contracts cannot express is refused with a
ConfigError naming the field. The deployment file holds the chain, the contract addresses, the deal contract's
resolved parameters and the resolved mechanism config. With `chain=anvil state=<file>` the node's state is dumped
to that file on exit, so a later `AnvilChain(state=<file>)` resumes the deployment.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.analysis.configs import compose_plain, searchpath_override
from live.chain.binding import deploy
from live.chain.node import Chain, open_chain
from live.chain.params import ChainParams, chain_params, check_market
from mechanisms.base import MechanismStack
from mechanisms.config import ConfigError

OPTIONS = ("mechanism", "chain", "market", "searchpath", "out", "state", "accounts")


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """`key=value` pairs; unknown keys or a missing `mechanism` / `chain` are errors naming the key."""
    args: dict[str, str] = {"market": "default", "out": "deployment.json"}
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep or key not in OPTIONS:
            raise ConfigError(f"argument {a!r} is invalid: allowed key=value with key one of {list(OPTIONS)}")
        args[key] = value
    for key in ("mechanism", "chain"):
        if key not in args:
            raise ConfigError(f"{key} is missing: allowed {key}=<value> (see python -m live.deploy --help)")
    return args


def resolve(args: Mapping[str, str]) -> dict[str, Any]:
    """The composed config (mechanism and market sections) the deployment is built from."""
    extra = searchpath_override([args["searchpath"]]) if args.get("searchpath") else []
    return compose_plain("simulate", [f"mechanism={args['mechanism']}", f"market={args['market']}", *extra])


def run(argv: Sequence[str]) -> dict[str, Any]:
    args = parse_args(argv)
    cfg = resolve(args)
    stack = MechanismStack.from_mapping(cfg["mechanism"], "mechanism")
    rerun_costs = [int(m["compute_cost"]) for m in cfg["market"].get("modules", [])]  # a consortium's dissenters
    params = chain_params(stack, rerun_costs)  # refuses what the contracts cannot express, before any chain starts
    n_mediators = int(cfg["market"]["n_mediators"])
    check_market(n_mediators)
    kwargs = {"state": args["state"]} if args["chain"] == "anvil" and args.get("state") else {}
    n_accounts = int(args.get("accounts", n_mediators + 4))
    with open_chain(args["chain"], max(n_accounts, n_mediators + 4), **kwargs) as chain:
        record = deploy_record(chain, cfg, params, n_mediators, args.get("state"))
    Path(args["out"]).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def deploy_record(
    chain: Chain,
    cfg: dict[str, Any],
    params: ChainParams,
    n_mediators: int,
    state: str | None = None,
    accounts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Deploy on an open chain (account 0 deploys, account 1 is the treasury, the next `n_mediators` mediate, every
    other account gets tokens) and return the deployment record the services read. `accounts`: the network's own
    accounts in that order (default: the chain's dev accounts)."""
    acc = list(chain.accounts if accounts is None else accounts)
    holders = [a for i, a in enumerate(acc) if i != 1]
    dep = deploy(
        chain,
        params,
        acc[2 : 2 + n_mediators],
        acc[1],
        holders,
        [10**12] * len(holders),
        beacon="prevrandao",
        deployer=acc[0],
    )
    return {
        "chain": chain.name,
        "chain_id": int(chain.w3.eth.chain_id),
        "block": dep.block,
        "url": getattr(chain, "url", None),
        "state_file": state,
        "contracts": {
            "token": dep.token.address,
            "deals": dep.deals.address,
            "beacon": dep.beacon.address,
            **({"replication": dep.replication.address} if dep.replication is not None else {}),
            **({"whistleblowing": dep.whistle.address} if dep.whistle is not None else {}),
        },
        "beacon": dep.beacon_kind,
        "deployer": dep.deployer,
        "protocol_treasury": dep.protocol,
        "mediators": dep.mediators,
        "accounts": acc,  # layout order: deployer, treasury, mediators, then the others (clients, nodes)
        "params": params.as_dict(),
        "mechanism": cfg["mechanism"],
    }


def main() -> None:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return
    try:
        record = run(sys.argv[1:])
    except ConfigError as exc:
        sys.exit(f"live.deploy: {exc}")
    print(f"deployed {record['mechanism'].get('order')} on {record['chain']}: deals {record['contracts']['deals']}")


if __name__ == "__main__":
    main()
