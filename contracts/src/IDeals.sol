// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The deal contract's external interface: what clients, nodes, mediators and the solver call.
/// @notice Deals implements it (the compiler rejects a missing or renamed function), and the Python binding and
/// the live services call through this ABI, so an interface/implementation name drift cannot go unnoticed
/// (Lilypad's submit and judge timeouts always reverted because of one).
interface IDeals {
    /// What both parties agree to; the deal id is the EIP-712 hash of these fields, so an id names its terms.
    struct Terms {
        address client;
        address node;
        uint64 price; // base units per instruction
        uint64 instructions; // instruction count of the job
        uint32 multiplierBps; // the node's offered results-collateral multiplier (basis points of the job cost)
        uint32 module; // index of the module (job type) in the market's module list
        uint64 mediators; // bit mask of registered mediator indices both parties trust
        uint64 nonce; // makes repeated deals between the same parties distinct
    }

    /// A happy-path deal settled in a batch: both parties signed (EIP-712) the deal id and the result hash.
    struct Signed {
        Terms terms;
        bytes32 resultHash;
        bytes clientSignature;
        bytes nodeSignature;
    }

    function deposit(uint256 amount) external;
    function withdraw(uint256 amount) external;
    function stake(address node, uint256 amount) external;

    function agree(Terms calldata t) external returns (bytes32 id);
    function submitResults(Terms calldata t, bytes32 resultHash, uint64 instructions) external;
    function acceptResults(Terms calldata t) external;
    function checkResults(Terms calldata t) external;
    function mediate(Terms calldata t, bool accept) external;
    function vote(Terms calldata t, bool accept, bool reran) external;

    function timeoutAgree(Terms calldata t) external;
    function timeoutSubmitResults(Terms calldata t) external;
    function timeoutJudgeResults(Terms calldata t) external;
    function timeoutMediateResults(Terms calldata t) external;

    function settleSigned(Signed[] calldata deals) external;

    function dealId(Terms calldata t) external view returns (bytes32);
    function escrowOf(bytes32 id) external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
}
