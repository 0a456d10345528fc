// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IRandomness} from "../src/Randomness.sol";

/// @title Test-only beacon: its deployer sets the word drawn for each deal, so a differential test can replay the
/// twin's own mediator draw on chain. Never deployed by live/deploy.py outside tests.
contract ScriptedBeacon is IRandomness {
    address public immutable setter;
    mapping(bytes32 => uint256) public words;

    error NotSetter(address caller);

    constructor() {
        setter = msg.sender;
    }

    function set(bytes32[] calldata ids, uint256[] calldata values) external {
        if (msg.sender != setter) revert NotSetter(msg.sender);
        for (uint256 i = 0; i < ids.length; ++i) {
            words[ids[i]] = values[i];
        }
    }

    function draw(bytes32 id) external view returns (uint256) {
        return words[id];
    }
}
