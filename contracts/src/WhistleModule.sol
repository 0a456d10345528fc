// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {DealProtocol} from "./DealProtocol.sol";
import {IDeals} from "./IDeals.sol";
import {IDealsOfReplication} from "./ReplicationModule.sol";

/// @title What the whistleblowing module reads from, and calls on, the deal contract.
interface IDealsOfWhistle is IDealsOfReplication {
    function minDeposit() external view returns (uint256);
    function moduleMove(address from, address to, uint256 amount) external;
}

/// @title Whistleblowing, the bribed mediator's proof (mechanisms/whistleblowing.py, `mediators`).
/// @notice A separate contract in the deal contract's module slot (the one the replication module uses: the deal
/// contract is at the EIP-170 code limit), so the deal contract takes results and verdicts only through it and asks
/// it where a node's slashed value goes. The proof is the bribing node's EIP-712 signature over
/// `Bribe(bytes32 deal)` under this contract's domain: the node's offer of a bribe for that deal, which an honest
/// node never signs. The deal's drawn mediator presents it with `reportBribe` instead of its verdict: the node's
/// result is rejected and its slashed results collateral goes to the reporting mediator, who passes on all but
/// `rewardBps` of it to where the deposit would have gone (`RewardPassedOn`, the twin's Reward/Spent move; the deal
/// contract's `moduleMove`, in the same transaction as the settlement that credited it). A forged signature, one by
/// anyone but the deal's node, a report by anyone but the drawn mediator, or in any state but ResultsChecked (so also
/// a second report) reverts and moves nothing.
contract WhistleModule is EIP712 {
    bytes32 public constant BRIBE_TYPEHASH = keccak256("Bribe(bytes32 deal)");
    uint256 internal constant BPS = 10_000;

    IDealsOfWhistle public immutable deals;
    uint256 public immutable rewardBps; // share of the slashed deposit the reporting mediator keeps

    /// Where the slashed deposit of the deal now settling would have gone (set by `nodeSlashTo` during the
    /// settlement, read right after it in the same transaction).
    address internal transient baseDestination;

    /// The mediator that proved the node's bribe, per deal (zero: none).
    mapping(bytes32 => address) public reporter;

    /// The drawn mediator of deal `id` proved that `node` offered it a bribe.
    event BribeProven(bytes32 indexed id, address indexed mediator, address node);
    /// The reporting mediator passed on `amount` of its reward to `to`, where the deposit would have gone.
    event RewardPassedOn(bytes32 indexed id, address indexed from, address to, uint256 amount);

    error InvalidWhistle(string field);
    error NotParty(bytes32 id, address caller);
    error WrongState(bytes32 id, DealProtocol.State state);
    error BadSignature(bytes32 id, address expected);
    error OnlyDeals(address caller);

    constructor(IDealsOfWhistle deals_, uint256 rewardBps_) EIP712("Whistle", "1") {
        if (address(deals_) == address(0)) revert InvalidWhistle("deals");
        if (rewardBps_ > BPS) revert InvalidWhistle("rewardBps");
        deals = deals_;
        rewardBps = rewardBps_;
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
    /// node's slashed results collateral is the mediator's reward.
    function reportBribe(IDeals.Terms calldata t, bytes calldata signature) external {
        bytes32 id = _mediator(t);
        (DealProtocol.State s,,,,) = deals.deals(id);
        if (s != DealProtocol.State.ResultsChecked) revert WrongState(id, s);
        if (ECDSA.recover(bribeDigest(id), signature) != t.node) revert BadSignature(id, t.node);
        reporter[id] = msg.sender;
        emit BribeProven(id, msg.sender, t.node);
        deals.mediate(t, false);
        uint256 results = uint256(t.price) * t.instructions * t.multiplierBps / BPS;
        uint256 minimum = deals.minDeposit();
        if (results < minimum) results = minimum; // the deal contract's results collateral, as it slashed it
        uint256 rest = results - results * rewardBps / BPS;
        if (rest != 0) {
            address to = baseDestination;
            emit RewardPassedOn(id, msg.sender, to, rest);
            deals.moduleMove(msg.sender, to, rest);
        }
    }

    /// Where the deal contract sends value slashed from a node: the reporting mediator for a proven briber's
    /// rejected result, else `base`.
    function nodeSlashTo(bytes32 id, address, DealProtocol.State state, address base) external returns (address) {
        if (msg.sender != address(deals)) revert OnlyDeals(msg.sender);
        address to = reporter[id];
        if (state != DealProtocol.State.MediationRejected || to == address(0)) return base;
        baseDestination = base;
        return to;
    }

    /// The EIP-712 digest a node signs to offer a bribe for deal `id` (what `reportBribe` verifies).
    function bribeDigest(bytes32 id) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BRIBE_TYPEHASH, id)));
    }

    /// The deal id of `t`, whose drawn mediator must be the caller.
    function _mediator(IDeals.Terms calldata t) internal view returns (bytes32 id) {
        id = deals.dealId(t);
        (,, uint8 m,,) = deals.deals(id);
        if (m == 0 || msg.sender != deals.mediators(m - 1)) revert NotParty(id, msg.sender);
    }
}
