// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The protocol's vocabulary on chain: deal states, the legal transitions, payment reasons, directions, steps.
/// @notice Mirrors mechanisms/protocol.py member by member (same names, same order). contracts/build.py refuses to
/// produce artifacts when a name or an order differs, and tests/contracts/test_protocol_table.py compares the
/// transition table entry by entry, so the Solidity and Python tables cannot drift apart.
library DealProtocol {
    enum State {
        DealNegotiating,
        DealAgreed,
        ResultsSubmitted,
        ResultsAccepted,
        ResultsChecked,
        MediationAccepted,
        MediationRejected,
        TimeoutAgree,
        TimeoutSubmitResults,
        TimeoutJudgeResults,
        TimeoutMediateResults
    }

    enum Reason {
        PaymentCollateral,
        JudgeTimeoutCollateral,
        SubmitTimeoutCollateral,
        ResultsCollateral,
        JobPayment,
        MediationFee,
        ComputeCost,
        Bribe,
        Tax,
        Jackpot,
        Stake,
        Reward,
        StorageCost
    }

    enum Direction {
        PaidIn,
        PaidOut,
        Refunded,
        Slashed,
        Spent
    }

    enum Step {
        Agree,
        Submit,
        Judge,
        Mediate,
        Settle,
        Round
    }

    /// Bit (11 * from + to) is set iff from -> to is legal:
    /// DealNegotiating -> DealAgreed | TimeoutAgree; DealAgreed -> ResultsSubmitted | TimeoutSubmitResults;
    /// ResultsSubmitted -> ResultsAccepted | ResultsChecked | TimeoutJudgeResults;
    /// ResultsChecked -> MediationAccepted | MediationRejected | TimeoutMediateResults.
    uint256 internal constant LEGAL =
        (1 << (0 * 11 + 1)) | (1 << (0 * 11 + 7)) |
        (1 << (1 * 11 + 2)) | (1 << (1 * 11 + 8)) |
        (1 << (2 * 11 + 3)) | (1 << (2 * 11 + 4)) | (1 << (2 * 11 + 9)) |
        (1 << (4 * 11 + 5)) | (1 << (4 * 11 + 6)) | (1 << (4 * 11 + 10));

    function isLegal(State from, State to) internal pure returns (bool) {
        return (LEGAL >> (uint256(from) * 11 + uint256(to))) & 1 == 1;
    }
}
