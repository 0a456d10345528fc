"""Keys: from the environment (hex or keystore) or, explicitly, anvil's dev mnemonic; a key from the environment is
the one that signs; no key ever reaches a log line, stdout or stderr."""

from __future__ import annotations

import json
import logging

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from live.chain.binding import EIP712_DOMAIN
from live.services.keys import HALF_N, dev_keys, env_key, keyring, recover_typed
from live.services.network import Network
from mechanisms.config import ConfigError

pytestmark = [pytest.mark.xdist_group("docker")]


def secret(i: int) -> str:
    return "0x" + keccak(text=f"live-keys-test-{i}").hex()


def env_keys(n_mediators: int, n_clients: int, n_nodes: int) -> dict[str, str]:
    roles = [("DEPLOYER", 1), ("TREASURY", 1), ("MEDIATOR", n_mediators), ("CLIENT", n_clients), ("NODE", n_nodes)]
    env, k = {}, 0
    for role, n in roles:
        for i in range(n):
            env[f"LIVE_KEY_{role}_{i}"] = secret(k)
            k += 1
    return env


def test_keys_come_from_hex_or_a_keystore_and_never_show(tmp_path) -> None:
    key = env_key("node", 0, {"LIVE_KEY_NODE_0": secret(1)})
    assert key.address == Account.from_key(secret(1)).address
    assert secret(1)[2:] not in repr(key) + str(key)
    store = tmp_path / "ks.json"
    store.write_text(json.dumps(Account.encrypt(secret(2), "pw", kdf="pbkdf2", iterations=2)))
    env = {"LIVE_KEYSTORE_CLIENT_3": str(store), "LIVE_KEYSTORE_PASSWORD": "pw"}
    assert env_key("client", 3, env).address == Account.from_key(secret(2)).address
    with pytest.raises(ConfigError, match="LIVE_KEYSTORE_PASSWORD_CLIENT_3"):
        env_key("client", 3, {"LIVE_KEYSTORE_CLIENT_3": str(store)})
    with pytest.raises(ConfigError, match="LIVE_KEYSTORE_CLIENT_3") as bad:
        env_key("client", 3, {**env, "LIVE_KEYSTORE_PASSWORD": "wrong"})
    assert "wrong" not in str(bad.value)
    with pytest.raises(ConfigError, match="LIVE_KEY_NODE_0 is invalid") as bad:
        env_key("node", 0, {"LIVE_KEY_NODE_0": "0x1234zz"})
    assert "1234zz" not in str(bad.value)
    partial = {k: v for k, v in env_keys(1, 1, 1).items() if "MEDIATOR" not in k}
    with pytest.raises(ConfigError, match="LIVE_KEY_MEDIATOR_0"):
        keyring("env", 1, 1, 1, partial)
    with pytest.raises(ConfigError, match="allowed one of"):
        keyring("vault", 1, 1, 1, {})


def bribe(deal: bytes) -> dict:
    """A whistleblowing bribe offer as `Deployment.bribe_typed` builds it (a made-up module address)."""
    domain = {"name": "Whistle", "version": "1", "chainId": 31337, "verifyingContract": "0x" + "ab" * 20}
    types = {"EIP712Domain": EIP712_DOMAIN, "Bribe": [{"name": "deal", "type": "bytes32"}]}
    return {"types": types, "primaryType": "Bribe", "domain": domain, "message": {"deal": "0x" + deal.hex()}}


def test_a_key_signs_typed_data_and_only_what_the_contract_accepts_recovers() -> None:
    key = env_key("node", 0, {"LIVE_KEY_NODE_0": secret(1)})
    sig = key.sign_typed(bribe(b"\x01" * 32))
    assert len(sig) == 65 and recover_typed(bribe(b"\x01" * 32), sig) == key.address
    assert recover_typed(bribe(b"\x02" * 32), sig) != key.address  # another deal's offer: another signer
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    malleable = r + (2 * HALF_N + 1 - s).to_bytes(32, "big") + bytes([55 - v])  # the same point, high s
    for bad in (malleable, r + sig[32:64] + bytes([v - 27]), sig[:64]):  # high s, v 0/1, no v
        with pytest.raises(ValueError, match="not a valid signature"):
            recover_typed(bribe(b"\x01" * 32), bad)


def test_dev_keys_are_anvils_accounts() -> None:
    from live.chain.node import AnvilChain, anvil_available

    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci)")
    with AnvilChain(3) as chain:
        assert [k.address for k in dev_keys(3)] == chain.accounts


def test_environment_keys_sign_and_never_leak(run_net, monkeypatch, caplog, capfd) -> None:
    env = env_keys(1, 1, 1)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)

    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        c = net.clients[0]
        posted = c.chain.rpc(
            "eth_getLogs",
            {
                "address": c.dep.deals.address,
                "fromBlock": hex(c.dep.block),
                "toBlock": "latest",
                "topics": ["0x" + Web3.keccak(text="ResultsPosted(bytes32,bytes32,uint64)").hex()],
            },
        )
        senders = [c.chain.rpc("eth_getTransactionByHash", lg["transactionHash"])["from"] for lg in posted]
        dev = net.node.accounts
        return jobs, senders, net.who, dev

    jobs, senders, who, dev = run_net(["keys=env"], body)
    assert jobs[0]["state"] == "ResultsAccepted"
    node_address = Account.from_key(env["LIVE_KEY_NODE_0"]).address
    assert who.nodes == [node_address] and node_address not in dev
    assert [Web3.to_checksum_address(s) for s in senders] == [node_address]
    out, err = capfd.readouterr()
    seen = (caplog.text + out + err).lower()
    assert caplog.records  # the run did log
    for value in env.values():
        assert value[2:].lower() not in seen
