// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Test-only relay: forwards a call, so the deal contract sees this contract as msg.sender while tx.origin
/// is the user who called it (the tx.origin regression test).
contract Forwarder {
    function forward(address target, bytes calldata data) external {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}
