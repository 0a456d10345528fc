// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title The deposit token: a plain OpenZeppelin ERC-20 whose whole supply is minted once, at deployment, to one
/// holder (the deployer hands out the twin's initial balances with ordinary transfers). No owner, no later minting.
contract Token is ERC20 {
    constructor(string memory name_, string memory symbol_, address holder, uint256 supply) ERC20(name_, symbol_) {
        _mint(holder, supply);
    }

    /// Amounts are the twin's integer base units; there is no fractional unit.
    function decimals() public pure override returns (uint8) {
        return 0;
    }
}
