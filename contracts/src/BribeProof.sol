// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {DealProtocol} from "./DealProtocol.sol";
import {IDeals} from "./IDeals.sol";

/// @title What a module in the deal contract's module slot reads from, and calls on, the deal contract.
interface IDealsOfModule {
    function deals(bytes32 id) external view returns (DealProtocol.State, uint8, uint8, uint40, uint128);
    function mediators(uint256 index) external view returns (address);
    function dealId(IDeals.Terms calldata t) external view returns (bytes32);
    function submitResults(IDeals.Terms calldata t, bytes32 resultHash, uint64 instructions) external;
    function mediate(IDeals.Terms calldata t, bool accept) external;
    function minDeposit() external view returns (uint256);
    function moduleMove(address from, address to, uint256 amount) external;
}

/// @title The bribed mediator's proof (mechanisms/whistleblowing.py, `mediators`), shared by the modules that hold
/// the deal contract's module slot (WhistleModule alone, ReplicationModule with replication).
/// @notice The proof is the bribing node's EIP-712 signature over `Bribe(bytes32 deal)` under the module's domain:
/// the node's offer of a bribe for that deal, which an honest node never signs. The deal's drawn mediator presents it
/// instead of its verdict while the deal is ResultsChecked: the node's result is rejected and its slashed results
/// collateral goes to the reporting mediator, who passes on all but `rewardBps` of it to where the deposit would have
/// gone (`RewardPassedOn`, the twin's Reward/Spent move, through the deal contract's `moduleMove` in the same
/// transaction as the settlement that credited it). A forged signature, one by anyone but the deal's node, or a
/// report in another state (so also a second report) reverts and moves nothing.
abstract contract BribeProof is EIP712 {
    bytes32 public constant BRIBE_TYPEHASH = keccak256("Bribe(bytes32 deal)");
    uint256 internal constant BPS = 10_000;

    bool public immutable bribeProofs; // whistleblowing's mediators' proof is enabled
    uint256 public immutable rewardBps; // share of the slashed deposit the reporting mediator keeps

    /// Where the slashed deposit of the deal now settling would have gone (set during the settlement, read right
    /// after it in the same transaction).
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
    error BribeProofsDisabled();
    error OnlyDeals(address caller);

    constructor(bool bribeProofs_, uint256 rewardBps_) EIP712("Whistle", "1") {
        if (rewardBps_ > BPS) revert InvalidWhistle("rewardBps");
        bribeProofs = bribeProofs_;
        rewardBps = rewardBps_;
    }

    /// The EIP-712 digest a node signs to offer a bribe for deal `id` (what a report verifies).
    function bribeDigest(bytes32 id) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BRIBE_TYPEHASH, id)));
    }

    function _dealsContract() internal view virtual returns (IDealsOfModule);

    /// Check the proof of a report on deal `id` by its drawn mediator (checked by the caller) and record it; the
    /// caller then has the deal contract reject the result and calls `_passOn`.
    function _proveBribe(IDeals.Terms calldata t, bytes32 id, bytes calldata signature) internal {
        if (!bribeProofs) revert BribeProofsDisabled();
        (DealProtocol.State s,,,,) = _dealsContract().deals(id);
        if (s != DealProtocol.State.ResultsChecked) revert WrongState(id, s);
        if (ECDSA.recover(bribeDigest(id), signature) != t.node) revert BadSignature(id, t.node);
        reporter[id] = msg.sender;
        emit BribeProven(id, msg.sender, t.node);
    }

    /// The reporter passes on all but its reward of the results collateral the settlement just credited it.
    function _passOn(IDeals.Terms calldata t, bytes32 id) internal {
        IDealsOfModule deals_ = _dealsContract();
        uint256 results = uint256(t.price) * t.instructions * t.multiplierBps / BPS;
        uint256 minimum = deals_.minDeposit();
        if (results < minimum) results = minimum; // the deal contract's results collateral, as it slashed it
        uint256 rest = results - results * rewardBps / BPS;
        if (rest != 0) {
            address to = baseDestination;
            emit RewardPassedOn(id, msg.sender, to, rest);
            deals_.moduleMove(msg.sender, to, rest);
        }
    }

    /// Where a node's slashed value goes: the reporter for a proven briber's rejected result, else `base`.
    function _bribeSlashTo(bytes32 id, DealProtocol.State state, address base) internal returns (address) {
        if (!bribeProofs || state != DealProtocol.State.MediationRejected) return base;
        address to = reporter[id];
        if (to == address(0)) return base;
        baseDestination = base;
        return to;
    }
}
