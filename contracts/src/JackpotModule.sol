// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title A tax on paid deals funds a jackpot for the clients whose checks mediation upheld (mechanisms/tax_jackpot.py).
/// @notice Every deal whose node is paid pays `taxBps` of its job cost into the jackpot pool (out of the node's
/// payment, or by the client on top, escrowed at its agreement and refunded when the node is not paid). The client
/// of every MediationRejected deal files a claim. A round ends when anyone calls `payJackpot` (at most once per
/// `roundBlocks`): the round's claims share the pool as it stood when the round began (its taxes wait for the next
/// round): `fraction` mode pays each floor(floor(pool x fractionBps / 10000) / claims), `fixed` mode min(amount,
/// floor(pool / claims)), both capped at `maxPayout`. The pool is credited to JACKPOT, an address nobody holds.
abstract contract JackpotModule {
    /// The jackpot pool's account (no key: only payJackpot moves its balance).
    address public constant JACKPOT = 0x000000000000000000000000006a61636B706F74;

    struct JackpotConfig {
        bool enabled;
        uint16 taxBps;
        bool clientPays; // tax on top of the payment, escrowed by the client at agreement
        bool fixedMode; // fixed: `amount` per claim; else fraction: `fractionBps` of the pool shared
        uint16 fractionBps;
        uint96 amount;
        uint96 maxPayout; // cap per claim (type(uint96).max: none)
        uint32 roundBlocks; // blocks between two payouts at least
    }

    bool internal immutable _jackpot;
    uint256 internal immutable _taxBps;
    bool internal immutable _clientPaysTax;
    bool internal immutable _fixedMode;
    uint256 internal immutable _fractionBps;
    uint256 internal immutable _amount;
    uint256 internal immutable _maxPayout;
    uint256 internal immutable _roundBlocks;

    uint256 public roundStartPool; // the pool when the current round began
    uint256 public roundStartBlock;
    bytes32[] internal claimDeals; // the current round's claims, in the order they were filed
    address[] internal claimants;

    event Claimed(bytes32 indexed id, address indexed claimant);
    event JackpotPaid(bytes32 indexed id, address indexed claimant, uint256 amount);

    error JackpotDisabled();
    error InvalidJackpot(string field);

    constructor(JackpotConfig memory j) {
        if (j.enabled && (j.taxBps > 10_000 || j.fractionBps > 10_000)) revert InvalidJackpot("bps");
        _jackpot = j.enabled;
        _taxBps = j.taxBps;
        _clientPaysTax = j.clientPays;
        _fixedMode = j.fixedMode;
        _fractionBps = j.fractionBps;
        _amount = j.amount;
        _maxPayout = j.maxPayout;
        _roundBlocks = j.roundBlocks;
        roundStartBlock = block.number;
    }

    function _tax(uint256 jobCost) internal view returns (uint256) {
        return _jackpot ? jobCost * _taxBps / 10_000 : 0;
    }

    function _claim(bytes32 id, address claimant) internal {
        claimDeals.push(id);
        claimants.push(claimant);
        emit Claimed(id, claimant);
    }

    /// What each of `n` claims receives from a pool of `pool` (mechanisms.tax_jackpot.TaxJackpot.payout).
    function _each(uint256 pool, uint256 n) internal view returns (uint256 each) {
        if (n == 0) return 0;
        if (_fixedMode) {
            each = pool / n;
            if (_amount < each) each = _amount;
        } else {
            each = pool * _fractionBps / 10_000 / n;
        }
        if (_maxPayout < each) each = _maxPayout;
    }

    function pendingClaims() external view returns (uint256) {
        return claimDeals.length;
    }
}
