// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DealProtocol} from "./DealProtocol.sol";

/// @title Third-party staking behind nodes (mechanisms/staking.py), as a module of the deal contract.
/// @notice Stakers escrow stakes behind a node. When mediation rejects the node's result, each stake behind it loses
/// `stakeSlashBps` (floored on its own) to the slash destination; when the node is paid and was not caught, it pays
/// its stakers `feeShareBps` of the job cost, pro rata to stake (floored per staker, the remainder stays with it).
/// Stakes stay escrowed (the twin never unstakes; unstaking with a delay is not implemented).
abstract contract StakeModule {
    uint8 public constant STAKE_SLASH_BURN = 0;
    uint8 public constant STAKE_SLASH_PROTOCOL = 1;
    uint8 public constant STAKE_SLASH_CLIENT = 2;
    /// Role code of the k-th staker behind the deal's node in a packed move (Deals.StateChanged).
    uint256 public constant ROLE_FIRST_STAKER = 7;
    uint256 internal constant MAX_STAKERS = 185; // per node: bounds a settlement's loop; roles up to 191 (PanelModule's seats follow)

    mapping(address => address[]) internal backers; // node -> stakers, in the order they first staked
    mapping(address => mapping(address => uint256)) public stakeOf; // node -> staker -> stake
    mapping(address => uint256) public staked; // staker -> its stakes behind every node

    event Staked(address indexed node, address indexed staker, uint256 amount, uint256 index);

    error StakingDisabled();
    error TooManyStakers(address node);

    function stakingEnabled() public view virtual returns (bool);
    function stakeSlashBps() public view virtual returns (uint256);
    function stakeSlashTo() public view virtual returns (uint8);
    function feeShareBps() public view virtual returns (uint256);

    /// Escrow `amount` behind `node` from the caller's free balance, topped up from its tokens.
    function _stake(address node, uint256 amount) internal {
        if (!stakingEnabled()) revert StakingDisabled();
        if (stakeOf[node][msg.sender] == 0) {
            if (backers[node].length >= MAX_STAKERS) revert TooManyStakers(node);
            backers[node].push(msg.sender);
        }
        _takeFrom(msg.sender, amount);
        stakeOf[node][msg.sender] += amount;
        staked[msg.sender] += amount;
        emit Staked(node, msg.sender, amount, backers[node].length - 1);
    }

    function stakersOf(address node) external view returns (address[] memory) {
        return backers[node];
    }

    /// The stakers' share of a settled deal: when the node was caught each stake loses its slash to `dest` (role
    /// `destRole` in the log); otherwise the node pays them `fee`, pro rata to stake (0 when it was not paid).
    function _settleStakes(address node, uint256 fee, bool caught, address dest, uint256 destRole,
        uint256[] memory log) internal {
        if (caught) {
            _slashAll(node, dest, destRole, log);
        } else if (fee > 0) {
            _payAll(node, fee, log);
        }
    }

    function _slashAll(address node, address dest, uint256 destRole, uint256[] memory log) internal {
        address[] storage list = backers[node];
        for (uint256 k = 0; k < list.length; ++k) {
            _slashStake(node, list[k], k, dest, destRole, log);
        }
    }

    function _payAll(address node, uint256 fee, uint256[] memory log) internal {
        address[] storage list = backers[node];
        uint256 total = 0;
        for (uint256 k = 0; k < list.length; ++k) {
            total += stakeOf[node][list[k]];
        }
        for (uint256 k = 0; k < list.length; ++k) {
            _payStaker(node, list[k], k, fee * stakeOf[node][list[k]] / total, log);
        }
    }

    function _slashStake(address node, address staker, uint256 k, address dest, uint256 destRole,
        uint256[] memory log) internal {
        uint256 cut = stakeOf[node][staker] * stakeSlashBps() / 10_000;
        if (cut == 0) return;
        stakeOf[node][staker] -= cut;
        staked[staker] -= cut;
        _credit(dest, cut);
        _logMove(log, cut, DealProtocol.Reason.Stake, DealProtocol.Direction.Slashed, ROLE_FIRST_STAKER + k, destRole);
    }

    function _payStaker(address node, address staker, uint256 k, uint256 share, uint256[] memory log) internal {
        if (share == 0) return;
        _debit(node, share);
        _credit(staker, share);
        _logMove(log, share, DealProtocol.Reason.Reward, DealProtocol.Direction.Spent, 2, ROLE_FIRST_STAKER + k);
    }

    function _takeFrom(address party, uint256 amount) internal virtual;
    function _credit(address to, uint256 amount) internal virtual;
    function _debit(address from, uint256 amount) internal virtual;
    function _logMove(
        uint256[] memory log,
        uint256 amount,
        DealProtocol.Reason reason,
        DealProtocol.Direction direction,
        uint256 payerRole,
        uint256 payeeRole
    ) internal pure virtual;
}
