// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

interface IWithdraw {
    function deposit(uint256 amount) external;
    function withdraw(uint256 amount) external;
}

/// @title Test-only malicious token: every transfer to the attacker hands control to it mid-transfer (like an
/// ERC-777 receive hook), so the attacker can try to re-enter the deal contract.
contract ReentrantToken is ERC20 {
    Attacker public attacker;

    constructor(string memory name_, string memory symbol_, address holder, uint256 supply) ERC20(name_, symbol_) {
        _mint(holder, supply);
    }

    function setAttacker(Attacker a) external {
        attacker = a;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (to == address(attacker) && address(attacker) != address(0)) attacker.onReceive();
    }
}

/// @title Deposits, then withdraws and tries to withdraw again from inside the token transfer.
contract Attacker {
    IWithdraw public immutable deals;
    ERC20 public immutable token;
    uint256 public amount;
    bool public reentered; // a nested withdraw succeeded
    bool internal attacking;

    constructor(IWithdraw deals_, ERC20 token_) {
        deals = deals_;
        token = token_;
    }

    function depositAll() external {
        amount = token.balanceOf(address(this));
        token.approve(address(deals), amount);
        deals.deposit(amount);
    }

    function attack() external {
        attacking = true;
        deals.withdraw(amount);
        attacking = false;
    }

    function onReceive() external {
        if (!attacking) return;
        attacking = false;
        try deals.withdraw(amount) {
            reentered = true;
        } catch {}
    }
}
