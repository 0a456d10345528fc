"""Where the live network's signing keys come from, and signing without ever showing them.

Every service signs its own transactions locally (eth-account) and sends them raw, so the chain node holds no key.
Keys come from the environment, one per role and index:

- `LIVE_KEY_<ROLE>_<i>`: the private key as hex, or
- `LIVE_KEYSTORE_<ROLE>_<i>`: the path of an Ethereum keystore file (eth-account's JSON v3), decrypted with the
  password in `LIVE_KEYSTORE_PASSWORD_<ROLE>_<i>` or else `LIVE_KEYSTORE_PASSWORD`,

with ROLE one of DEPLOYER, TREASURY, MEDIATOR, CLIENT, NODE (deployer and treasury have index 0). `source=dev` uses
anvil's well-known dev mnemonic instead: for a local dev chain only, never the default of a key lookup that fails.
A `Key` never shows its secret: its repr and str are the address, and nothing here logs or prints a key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.constants import SECPK1_N

from mechanisms.config import ConfigError

ROLES = ("deployer", "treasury", "mediator", "client", "node")
SOURCES = ("dev", "env")
#: anvil's default dev mnemonic (public, in anvil's docs): dev chains only
DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: half the secp256k1 group order: OpenZeppelin's ECDSA refuses a larger s (the malleable twin of a signature)
HALF_N = SECPK1_N // 2


@dataclass(frozen=True, repr=False)
class Key:
    """One account's signing key; shows only its address."""

    address: str
    _account: LocalAccount = field(compare=False)

    def sign(self, tx: Mapping[str, Any]) -> str:
        """The raw signed transaction (0x hex) of `tx` (EIP-1559 fields, chain id and nonce included)."""
        return "0x" + bytes(self._account.sign_transaction(dict(tx)).raw_transaction).hex()

    def sign_typed(self, typed: Mapping[str, Any]) -> bytes:
        """The 65-byte EIP-712 signature (r, s, v) of the eth_signTypedData_v4 message `typed` (e.g. a whistleblowing
        bribe offer, `Deployment.bribe_typed`)."""
        return bytes(self._account.sign_message(encode_typed_data(full_message=dict(typed))).signature)

    def __repr__(self) -> str:
        return f"Key({self.address})"

    __str__ = __repr__


def recover_typed(typed: Mapping[str, Any], signature: bytes) -> str:
    """The address whose key signed the EIP-712 message `typed`, as OpenZeppelin's ECDSA.recover finds it (65 bytes,
    v 27 or 28, s in the lower half of the curve order); ValueError for a signature it would refuse."""
    if len(signature) != 65 or signature[64] not in (27, 28) or int.from_bytes(signature[32:64], "big") > HALF_N:
        raise ValueError("not a valid signature: allowed 65 bytes (r, s, v) with v 27 or 28 and a low s")
    try:
        return str(Account.recover_message(encode_typed_data(full_message=dict(typed)), signature=signature))
    except Exception as exc:  # eth-keys raises its own BadSignature (and ValueError) for a malformed one
        raise ValueError(f"not a valid signature: {type(exc).__name__}") from None


def from_hex(secret: str) -> Key:
    acct = Account.from_key(secret)
    return Key(acct.address, acct)


def dev_keys(n: int) -> list[Key]:
    """The first `n` accounts of anvil's dev mnemonic (anvil's own `eth_accounts`, in order)."""
    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(n):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(Key(acct.address, acct))
    return out


def env_key(role: str, i: int, env: Mapping[str, str] | None = None) -> Key:
    """The key of `role` number `i` from the environment (see the module doc); ConfigError naming the variables."""
    env = os.environ if env is None else env
    if role not in ROLES:
        raise ConfigError(f"role={role!r} is invalid: allowed one of {list(ROLES)}")
    tag = f"{role.upper()}_{i}"
    if f"LIVE_KEY_{tag}" in env:
        try:
            return from_hex(env[f"LIVE_KEY_{tag}"].strip())
        except (ValueError, TypeError):  # never echo the value: it is a secret
            raise ConfigError(f"LIVE_KEY_{tag} is invalid: allowed a 32-byte private key in hex") from None
    if f"LIVE_KEYSTORE_{tag}" in env:
        path = Path(env[f"LIVE_KEYSTORE_{tag}"])
        password = env.get(f"LIVE_KEYSTORE_PASSWORD_{tag}", env.get("LIVE_KEYSTORE_PASSWORD"))
        if password is None:
            raise ConfigError(f"LIVE_KEYSTORE_PASSWORD_{tag} (or LIVE_KEYSTORE_PASSWORD) is missing for {path}")
        try:
            secret = Account.decrypt(path.read_text(), password)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"LIVE_KEYSTORE_{tag}={str(path)!r} is invalid: {type(exc).__name__}") from None
        return from_hex(secret.hex())
    raise ConfigError(
        f"no key for {role} {i}: set LIVE_KEY_{tag} or LIVE_KEYSTORE_{tag} (+ password), or use keys=dev on a dev chain"
    )


@dataclass(frozen=True)
class KeyRing:
    """The keys of one network, by role (the layout's order: deployer, treasury, mediators, clients, nodes)."""

    deployer: Key
    treasury: Key
    mediators: list[Key]
    clients: list[Key]
    nodes: list[Key]

    @property
    def ordered(self) -> list[Key]:
        return [self.deployer, self.treasury, *self.mediators, *self.clients, *self.nodes]

    @property
    def by_address(self) -> dict[str, Key]:
        return {k.address: k for k in self.ordered}


def keyring(
    source: str, n_mediators: int, n_clients: int, n_nodes: int, env: Mapping[str, str] | None = None
) -> KeyRing:
    """The network's keys from `source` (dev | env)."""
    if source == "dev":
        keys = dev_keys(2 + n_mediators + n_clients + n_nodes)
        m, c = 2 + n_mediators, 2 + n_mediators + n_clients
        return KeyRing(keys[0], keys[1], keys[2:m], keys[m:c], keys[c:])
    if source == "env":
        return KeyRing(
            env_key("deployer", 0, env),
            env_key("treasury", 0, env),
            [env_key("mediator", i, env) for i in range(n_mediators)],
            [env_key("client", i, env) for i in range(n_clients)],
            [env_key("node", i, env) for i in range(n_nodes)],
        )
    raise ConfigError(f"keys={source!r} is invalid: allowed one of {list(SOURCES)}")
