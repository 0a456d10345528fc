"""Deployment from the twin's mechanism configs: deployable presets resolve, others are refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.build import load
from experiments.analysis.configs import mechanism
from live.chain.node import AnvilChain, open_chain
from live.chain.params import chain_params, check_live
from live.deploy import deploy_record, run
from mechanisms.base import MechanismStack
from mechanisms.config import ConfigError


def stack(preset: str) -> MechanismStack:
    return MechanismStack.from_mapping(mechanism(preset), "mechanism")


def test_presets_resolve_to_contract_parameters() -> None:
    assert chain_params(stack("modicum")).slash_to == "counterparty"
    assert chain_params(stack("modicum")).base_multiplier_bps == 30_000
    assert chain_params(stack("none")) == chain_params(stack("lilypad_v2"))


@pytest.mark.parametrize("preset", ["dong_counter_collusion"])
def test_mechanisms_not_on_chain_are_refused_naming_the_field(preset: str) -> None:
    with pytest.raises(ConfigError, match=r"mechanism\.whistleblowing\.nodes=True is invalid on chain.*cartel"):
        chain_params(stack(preset))


def test_live_services_run_every_deployable_mechanism_but_refuse_a_solver_drawn_panel() -> None:
    for other in ("consortium", "tax_jackpot", "replication", "whistleblowing"):
        check_live(MechanismStack.from_mapping({"order": ["lilypad_v2", other]}, "mechanism"), "chain")
    check_live(stack("lilypad_v2"), "stack")
    panel = MechanismStack.from_mapping({"order": ["lilypad_v2", "consortium"]}, "mechanism")
    with pytest.raises(ConfigError, match=r"network\.mediator_draw='stack' is invalid with mechanism\.consortium"):
        check_live(panel, "stack")


def test_dong_preset_deploys_its_replication_without_whistleblowing() -> None:
    mech = mechanism("dong_counter_collusion")
    mech["whistleblowing"] = {**mech["whistleblowing"], "enabled": False}
    p = chain_params(MechanismStack.from_mapping(mech, "mechanism"))
    assert (p.replication, p.replicas, p.commit_reveal, p.wrong_deposit_to) == (True, 2, True, "honest_replica")
    assert p.commit_blocks == p.deadline_submit // 2


def test_truebit_preset_is_refused_for_its_forced_errors() -> None:
    with pytest.raises(ConfigError, match=r"mechanism\.tax_jackpot\.forced_error_rate=0\.05 is invalid on chain"):
        chain_params(stack("truebit_jackpot"))


def test_consortium_resolves_and_refuses_selection_by_stake() -> None:
    with pytest.raises(ConfigError, match=r"mechanism\.consortium\.selection='stake' is invalid on chain"):
        chain_params(stack("consortium_staking_reputation"), [6, 60])
    mech = {"order": ["lilypad_v2", "consortium"], "consortium": {"size": 5, "threshold": 4, "dissent_to": "payer"}}
    p = chain_params(MechanismStack.from_mapping(mech, "mechanism"), [6, 60])
    assert (p.consortium, p.panel_size, p.panel_threshold, p.member_fee, p.dissent_to) == (True, 5, 4, 60, "payer")
    assert p.panel == (True, 5, 4, 1, 2, 0, True, 2, 60, [6, 60])


def test_staking_resolves_and_refuses_the_jackpot_destination() -> None:
    mech = {"order": ["lilypad_v2", "staking"], "staking": {"slash_bps": 2000, "fee_share_bps": 300}}
    p = chain_params(MechanismStack.from_mapping(mech, "mechanism"))
    assert (p.staking, p.stake_slash_bps, p.fee_share_bps, p.stake_slash_to) == (True, 2000, 300, "burn")
    mech["staking"]["slash_to"] = "jackpot"
    with pytest.raises(ConfigError, match=r"mechanism\.staking\.slash_to='jackpot' is invalid on chain"):
        chain_params(MechanismStack.from_mapping(mech, "mechanism"))


def test_collateral_overrides_the_base_terms() -> None:
    s = MechanismStack.from_mapping(
        {
            "order": ["lilypad_v2", "collateral"],
            "collateral": {"multipliers_bps": [10000, 30000], "min_deposit": 9, "judge_timeout_collateral": 1},
        },
        "mechanism",
    )
    p = chain_params(s)
    assert (p.multipliers_bps, p.min_deposit, p.judge_timeout_collateral) == ((10000, 30000), 9, 1)
    assert p.submit_timeout_collateral == 5  # kept from lilypad_v2


def test_deploy_cli_writes_a_deployment_file(tmp_path: Path) -> None:
    out = tmp_path / "deployment.json"
    record = run(["mechanism=modicum", "chain=embedded", f"out={out}"])
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["params"]["slash_to"] == "counterparty" and on_disk["mechanism"]["order"] == ["lilypad_v2"]
    assert set(on_disk["contracts"]) == {"token", "deals", "beacon"}


def test_a_replication_deployment_records_its_module() -> None:
    cfg = {"mechanism": {"order": ["lilypad_v2", "replication"], "replication": {"commit_reveal": True}}}
    params = chain_params(MechanismStack.from_mapping(cfg["mechanism"], "mechanism"))
    with open_chain("embedded", 8) as chain:
        record = deploy_record(chain, cfg, params, 3)
        module = record["contracts"]["replication"]
        deals = chain.w3.eth.contract(address=record["contracts"]["deals"], abi=load()["Deals"].abi)
        assert deals.functions.replication().call() == module and len(chain.w3.eth.get_code(module)) > 0
    assert record["params"]["commit_reveal"] and record["params"]["commit_blocks"] == params.deadline_submit // 2


def test_a_whistleblowing_deployment_records_its_module() -> None:
    mech = {"order": ["lilypad_v2", "whistleblowing"], "whistleblowing": {"nodes": False, "reward_bps": 4000}}
    cfg = {"mechanism": mech}
    params = chain_params(MechanismStack.from_mapping(mech, "mechanism"))
    with open_chain("embedded", 8) as chain:
        record = deploy_record(chain, cfg, params, 3)
        module = record["contracts"]["whistleblowing"]
        deals = chain.w3.eth.contract(address=record["contracts"]["deals"], abi=load()["Deals"].abi)
        whistle = chain.w3.eth.contract(address=module, abi=load()["WhistleModule"].abi)
        assert deals.functions.replication().call() == module  # the one module slot
        assert whistle.functions.rewardBps().call() == 4000 and whistle.functions.deals().call() == deals.address
    assert record["params"]["whistleblowing"] and "replication" not in record["contracts"]


def test_deploy_cli_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="consortium"):
        run(["mechanism=consortium_staking_reputation", "chain=embedded", f"out={tmp_path / 'x.json'}"])
    with pytest.raises(ConfigError, match="colour"):
        run(["mechanism=modicum", "chain=embedded", "colour=red"])
    with pytest.raises(ValueError, match="allowed one of"):
        open_chain("ganache")


def test_anvil_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "anvil.json"
    record = run(["mechanism=lilypad_v2", "chain=anvil", f"out={tmp_path / 'd.json'}", f"state={state}"])
    assert state.is_file()
    with AnvilChain(10, state=state) as chain:
        assert len(chain.w3.eth.get_code(record["contracts"]["deals"])) > 0
        assert chain.block_number() >= record["block"]
