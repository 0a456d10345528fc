// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title The deposit token: a plain OpenZeppelin ERC-20 whose whole supply is minted once, at deployment, to the
/// given holders (the twin's initial balances). No owner, no later minting.
contract Token is ERC20 {
    error LengthMismatch(uint256 holders, uint256 amounts);

    constructor(string memory name_, string memory symbol_, address[] memory holders, uint256[] memory amounts)
        ERC20(name_, symbol_)
    {
        if (holders.length != amounts.length) revert LengthMismatch(holders.length, amounts.length);
        for (uint256 i = 0; i < holders.length; ++i) {
            _mint(holders[i], amounts[i]);
        }
    }

    /// Amounts are the twin's integer base units; there is no fractional unit.
    function decimals() public pure override returns (uint8) {
        return 0;
    }
}
