// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {BribeProof, IDealsOfModule} from "./BribeProof.sol";
import {DealProtocol} from "./DealProtocol.sol";
import {IDeals} from "./IDeals.sol";

/// @title Whistleblowing without replication: the bribed mediator's proof (BribeProof) in the module slot.
/// @notice A separate contract in the deal contract's module slot (the one the replication module uses: the deal
/// contract is at the EIP-170 code limit), so the deal contract takes results and verdicts only through it and asks
/// it where a node's slashed value goes. With replication deployed, ReplicationModule carries the same proof.
contract WhistleModule is BribeProof {
    IDealsOfModule public immutable deals;

    constructor(IDealsOfModule deals_, uint256 rewardBps_) BribeProof(true, rewardBps_) {
        if (address(deals_) == address(0)) revert InvalidWhistle("deals");
        deals = deals_;
    }

    /// The node posts its result (forwarded to the deal contract, which checks the state, deadline and escrow).
    function post(IDeals.Terms calldata t, bytes32 result) external {
        if (msg.sender != t.node) revert NotParty(deals.dealId(t), msg.sender);
        deals.submitResults(t, result, t.instructions);
    }

    /// The drawn mediator's ordinary verdict (forwarded).
    function mediate(IDeals.Terms calldata t, bool accept) external {
        _mediator(t);
        deals.mediate(t, accept);
    }

    /// The drawn mediator proves the node's bribe offer with the node's signature: the result is rejected and the
    /// mediator keeps `rewardBps` of the node's slashed results collateral, passing on the rest.
    function reportBribe(IDeals.Terms calldata t, bytes calldata signature) external {
        bytes32 id = _mediator(t);
        _proveBribe(t, id, signature);
        deals.mediate(t, false);
        _passOn(t, id);
    }

    /// Where the deal contract sends value slashed from a node (called during its settlement).
    function nodeSlashTo(bytes32 id, address, DealProtocol.State state, address base) external returns (address) {
        if (msg.sender != address(deals)) revert OnlyDeals(msg.sender);
        return _bribeSlashTo(id, state, base);
    }

    function _dealsContract() internal view override returns (IDealsOfModule) {
        return deals;
    }

    /// The deal id of `t`, whose drawn mediator must be the caller.
    function _mediator(IDeals.Terms calldata t) internal view returns (bytes32 id) {
        id = deals.dealId(t);
        (,, uint8 m,,) = deals.deals(id);
        if (m == 0 || msg.sender != deals.mediators(m - 1)) revert NotParty(id, msg.sender);
    }
}
