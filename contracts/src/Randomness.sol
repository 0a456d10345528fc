// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Where a checked deal's mediator draw comes from.
interface IRandomness {
    /// A pseudo-random word for deal `id`; the deal contract reduces it modulo the number of mutual mediators.
    function draw(bytes32 id) external view returns (uint256);
}

/// @title The production beacon: the beacon chain's RANDAO mix of the current block (EIP-4399), hashed with the id.
/// @notice Neither party of a deal chooses it: the check's block fixes it. Its limits: the proposer of that block
/// knows the value in advance and can withhold its block (losing its reward) to re-roll it once, and a client that
/// is itself a proposer could time its check. A mediator set small enough to collude makes the draw moot anyway; a
/// VRF or a commit-reveal among mediators would remove the proposer's influence.
contract PrevrandaoBeacon is IRandomness {
    function draw(bytes32 id) external view returns (uint256) {
        return uint256(keccak256(abi.encode(block.prevrandao, id)));
    }
}
