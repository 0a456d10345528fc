// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {DealProtocol} from "./DealProtocol.sol";
import {IDeals} from "./IDeals.sol";
import {IRandomness} from "./Randomness.sol";
import {JackpotModule} from "./JackpotModule.sol";
import {PanelModule} from "./PanelModule.sol";
import {ReplicationModule} from "./ReplicationModule.sol";
import {StakeModule} from "./StakeModule.sol";

/// @title Deals: the Lilypad v2 deal lifecycle with per-deal escrow, settled exactly as mechanisms/lilypad_v2.py.
/// @notice Every waiting phase has its own deadline counted from the block the phase began; the late party's
/// collateral is slashed to the configured destination. Each deal holds its own escrow: a payout can only come
/// out of the deal's own escrow, and a deal that settles must leave it at zero. Parties keep a free balance inside
/// the contract (credited by settlements, topped up from their tokens when an escrow needs more) and pull it out
/// with `withdraw`. Parameters are fixed at deployment from the twin's mechanism config (live/chain/params.py).
contract Deals is IDeals, EIP712, ReentrancyGuardTransient, StakeModule, PanelModule, JackpotModule {
    using SafeERC20 for IERC20;

    /// Deployment parameters: the resolved lilypad_v2 terms (collateral overrides applied by the deployer).
    struct Config {
        IERC20 token;
        IRandomness beacon; // draws the mediator of a checked deal
        address protocol; // treasury receiving protocol slashes
        uint32 paymentCollateralBps;
        uint32 baseMultiplierBps; // the only offer allowed when `multipliers` is empty
        uint96 minDeposit; // results collateral = max(minDeposit, multiplier x job cost)
        uint96 submitTimeoutCollateral;
        uint96 judgeTimeoutCollateral;
        uint96 mediationFee;
        uint32 deadlineAgree; // blocks, from the first agreement
        uint32 deadlineSubmit; // from the agreement
        uint32 deadlineJudge; // from the posted result
        uint32 deadlineMediate; // from the check
        uint8 slashTo; // SLASH_BURN | SLASH_COUNTERPARTY | SLASH_MEDIATOR | SLASH_PROTOCOL
        bool forfeitPayment; // a node whose result mediation rejects is not paid
        uint32[] multipliers; // allowed offered multipliers (the collateral mechanism); empty = base only
        address[] mediators; // registry: index i is mediator i of the twin
        bool staking; // the staking mechanism (StakeModule) is enabled
        uint32 stakeSlashBps;
        uint8 stakeSlashTo; // STAKE_SLASH_BURN | STAKE_SLASH_PROTOCOL | STAKE_SLASH_CLIENT
        uint32 feeShareBps;
        PanelConfig panel; // the consortium mechanism (PanelModule); mediationFee is then every seat's fee
        JackpotConfig jackpot; // the tax_jackpot mechanism (JackpotModule)
        ReplicationModule replication; // the replication mechanism (zero: disabled); results and verdicts go through it
    }

    /// One storage slot per deal; the terms live in calldata and the DealCreated event, never in storage.
    struct Deal {
        DealProtocol.State state;
        uint8 flags; // CLIENT_AGREED | NODE_AGREED
        uint8 mediator; // registry index + 1 (0 = none)
        uint40 since; // block the current phase began (0 = no such deal)
        uint128 escrow; // value this deal holds
    }

    /// What a deal's terms oblige each party to escrow and pay.
    struct Amounts {
        uint256 jobCost;
        uint256 payment;
        uint256 judge;
        uint256 submit;
        uint256 results;
        uint256 fee;
    }

    uint8 internal constant CLIENT_AGREED = 1;
    uint8 internal constant NODE_AGREED = 2;
    uint8 public constant SLASH_BURN = 0;
    uint8 public constant SLASH_COUNTERPARTY = 1;
    uint8 public constant SLASH_MEDIATOR = 2;
    uint8 public constant SLASH_PROTOCOL = 3;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant MAX_MOVES = 12; // movements of value one state change can log
    uint8 internal constant ROLE_NONE = 0;
    uint8 internal constant ROLE_CLIENT = 1;
    uint8 internal constant ROLE_NODE = 2;
    uint8 internal constant ROLE_MEDIATOR = 3;
    uint8 internal constant ROLE_BURN = 4;
    uint8 internal constant ROLE_PROTOCOL = 5;
    uint8 internal constant ROLE_JACKPOT = 6;
    /// Burned value is credited here; nobody holds its key, so it can never be withdrawn.
    address public constant BURN = 0x000000000000000000000000000000000000dEaD;

    bytes32 public constant TERMS_TYPEHASH = keccak256(
        "Terms(address client,address node,uint64 price,uint64 instructions,uint32 multiplierBps,uint32 module,"
        "uint64 mediators,uint64 nonce)"
    );
    bytes32 public constant ACCEPTED_TYPEHASH = keccak256("Accepted(bytes32 deal,bytes32 resultHash)");

    IERC20 public immutable token;
    IRandomness public immutable beacon;
    address public immutable protocol;
    uint256 public immutable paymentCollateralBps;
    uint256 public immutable baseMultiplierBps;
    uint256 public immutable minDeposit;
    uint256 public immutable submitTimeoutCollateral;
    uint256 public immutable judgeTimeoutCollateral;
    uint256 public immutable mediationFee;
    uint256 public immutable deadlineAgree;
    uint256 public immutable deadlineSubmit;
    uint256 public immutable deadlineJudge;
    uint256 public immutable deadlineMediate;
    uint8 public immutable slashTo;
    bool public immutable forfeitPayment;
    bool internal immutable _staking;
    uint256 internal immutable _stakeSlashBps;
    uint8 internal immutable _stakeSlashTo;
    uint256 internal immutable _feeShareBps;
    ReplicationModule public immutable replication;

    uint32[] public multipliers;
    address[] public mediators;
    mapping(bytes32 => Deal) public deals;
    mapping(address => uint256) public balanceOf;

    event DealCreated(bytes32 indexed id, Terms terms);
    /// The deal entered `state`; `moves` are the movements of value since its previous state, each packed as
    /// amount (bits 0-127) | reason << 128 | direction << 136 | step << 144 | payer role << 152 | payee role << 160,
    /// roles being ROLE_* (payee ROLE_NONE for PaidIn and Refunded). One event per state keeps logs cheap.
    event StateChanged(bytes32 indexed id, DealProtocol.State state, uint256[] moves);
    event ResultsPosted(bytes32 indexed id, bytes32 resultHash, uint64 instructions);
    event MediatorSelected(bytes32 indexed id, address mediator);
    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    error NotParty(bytes32 id, address caller);
    error WrongState(bytes32 id, DealProtocol.State state);
    error UnknownDeal(bytes32 id);
    error DeadlinePassed(bytes32 id, uint256 deadline);
    error DeadlineNotReached(bytes32 id, uint256 deadline);
    error AlreadyAgreed(bytes32 id, address party);
    error IllegalTransition(DealProtocol.State from, DealProtocol.State to);
    error InvalidTerms(string field);
    error InvalidConfig(string field);
    error InstructionCountMismatch(uint64 agreed, uint64 posted);
    error InsufficientBalance(address account, uint256 needed, uint256 available);
    error BadSignature(bytes32 id, address expected);
    error EscrowNotSettled(bytes32 id, uint256 left);

    constructor(Config memory c) EIP712("Deals", "1") PanelModule(c.panel, c.mediators.length)
        JackpotModule(c.jackpot)
    {
        if (address(c.token) == address(0)) revert InvalidConfig("token");
        if (address(c.beacon) == address(0)) revert InvalidConfig("beacon");
        if (c.protocol == address(0)) revert InvalidConfig("protocol");
        if (c.paymentCollateralBps < BPS) revert InvalidConfig("paymentCollateralBps");
        if (c.slashTo > SLASH_PROTOCOL) revert InvalidConfig("slashTo");
        if (c.mediators.length == 0 || c.mediators.length > 64) revert InvalidConfig("mediators");
        if (c.deadlineAgree == 0 || c.deadlineSubmit == 0 || c.deadlineJudge == 0 || c.deadlineMediate == 0) {
            revert InvalidConfig("deadlines");
        }
        token = c.token;
        beacon = c.beacon;
        protocol = c.protocol;
        paymentCollateralBps = c.paymentCollateralBps;
        baseMultiplierBps = c.baseMultiplierBps;
        minDeposit = c.minDeposit;
        submitTimeoutCollateral = c.submitTimeoutCollateral;
        judgeTimeoutCollateral = c.judgeTimeoutCollateral;
        mediationFee = c.panel.enabled ? panelFee() : c.mediationFee;
        deadlineAgree = c.deadlineAgree;
        deadlineSubmit = c.deadlineSubmit;
        deadlineJudge = c.deadlineJudge;
        deadlineMediate = c.deadlineMediate;
        slashTo = c.slashTo;
        forfeitPayment = c.forfeitPayment;
        if (c.stakeSlashBps > BPS || c.feeShareBps > BPS) revert InvalidConfig("staking bps");
        if (c.stakeSlashTo > STAKE_SLASH_CLIENT) revert InvalidConfig("stakeSlashTo");
        _staking = c.staking;
        _stakeSlashBps = c.stakeSlashBps;
        _stakeSlashTo = c.stakeSlashTo;
        _feeShareBps = c.feeShareBps;
        replication = c.replication;
        multipliers = c.multipliers;
        mediators = c.mediators;
    }

    // ------------------------------------------------------------------ free balances (pulled, never pushed)

    /// Move tokens from the caller (never tx.origin) into its free balance.
    function deposit(uint256 amount) external nonReentrant {
        balanceOf[msg.sender] += amount;
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(msg.sender, amount);
    }

    /// Pull the caller's free balance out (checks, effects, then the token call).
    function withdraw(uint256 amount) external nonReentrant {
        uint256 available = balanceOf[msg.sender];
        if (amount > available) revert InsufficientBalance(msg.sender, amount, available);
        balanceOf[msg.sender] = available - amount;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// Escrow a stake behind `node` (the staking mechanism); it stays escrowed.
    function stake(address node, uint256 amount) external nonReentrant {
        _stake(node, amount);
    }

    function stakingEnabled() public view override returns (bool) {
        return _staking;
    }

    function stakeSlashBps() public view override returns (uint256) {
        return _stakeSlashBps;
    }

    function stakeSlashTo() public view override returns (uint8) {
        return _stakeSlashTo;
    }

    function feeShareBps() public view override returns (uint256) {
        return _feeShareBps;
    }

    // ------------------------------------------------------------------ the lifecycle, one call per step

    /// Either party agrees (the first creates the deal) and escrows its share; the second moves it to DealAgreed.
    function agree(Terms calldata t) external nonReentrant returns (bytes32 id) {
        id = dealId(t);
        bool isClient = msg.sender == t.client;
        if (!isClient && msg.sender != t.node) revert NotParty(id, msg.sender);
        Deal memory d = deals[id];
        if (d.since == 0) {
            _checkTerms(t);
            d.since = uint40(block.number);
            emit DealCreated(id, t);
        } else {
            if (d.state != DealProtocol.State.DealNegotiating) revert WrongState(id, d.state);
            _before(id, d.since + deadlineAgree);
        }
        uint8 bit = isClient ? CLIENT_AGREED : NODE_AGREED;
        if (d.flags & bit != 0) revert AlreadyAgreed(id, msg.sender);
        d.flags |= bit;
        Amounts memory a = _amounts(t);
        uint256[] memory log = _newLog();
        DealProtocol.Step step = DealProtocol.Step.Agree;
        if (isClient) {
            _in(t, d, log, t.client, a.payment, DealProtocol.Reason.PaymentCollateral, step, true);
            _in(t, d, log, t.client, a.judge, DealProtocol.Reason.JudgeTimeoutCollateral, step, true);
            _in(t, d, log, t.client, _clientPaysTax ? _tax(a.jobCost) : 0, DealProtocol.Reason.Tax, step, true);
        } else {
            _in(t, d, log, t.node, a.submit, DealProtocol.Reason.SubmitTimeoutCollateral, step, true);
        }
        if (d.flags == CLIENT_AGREED | NODE_AGREED) {
            _move(id, d, DealProtocol.State.DealAgreed, log);
        } else {
            _emit(id, d.state, log); // first agreement: the deal exists, still negotiating
        }
        deals[id] = d;
    }

    /// The node posts its result before the submit deadline; its submit collateral becomes results collateral.
    function submitResults(Terms calldata t, bytes32 resultHash, uint64 instructions) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.DealAgreed, _via(t.node), address(0));
        _before(id, d.since + deadlineSubmit);
        if (instructions != t.instructions) revert InstructionCountMismatch(t.instructions, instructions);
        Amounts memory a = _amounts(t);
        uint256[] memory log = _newLog();
        _out(t, d, log, t.node, address(0), a.submit, DealProtocol.Reason.SubmitTimeoutCollateral,
            DealProtocol.Direction.Refunded, DealProtocol.Step.Submit);
        _in(t, d, log, t.node, a.results, DealProtocol.Reason.ResultsCollateral, DealProtocol.Step.Submit, true);
        emit ResultsPosted(id, resultHash, instructions);
        _move(id, d, DealProtocol.State.ResultsSubmitted, log);
        deals[id] = d;
    }

    /// The client accepts the result before the judge deadline: the deal settles.
    function acceptResults(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.ResultsSubmitted, t.client, address(0));
        _before(id, d.since + deadlineJudge);
        _finish(id, t, d, DealProtocol.State.ResultsAccepted, _settleLog(t));
    }

    /// The client asks for mediation before the judge deadline: its judge collateral is returned, the mediation
    /// fee escrowed, and a mediator both parties trust is drawn by the beacon (no party chooses it).
    function checkResults(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.ResultsSubmitted, t.client, address(0));
        _before(id, d.since + deadlineJudge);
        Amounts memory a = _amounts(t);
        uint256[] memory log = _newLog();
        DealProtocol.Step step = DealProtocol.Step.Judge;
        _out(t, d, log, t.client, address(0), a.judge, DealProtocol.Reason.JudgeTimeoutCollateral,
            DealProtocol.Direction.Refunded, step);
        _in(t, d, log, t.client, a.fee, DealProtocol.Reason.MediationFee, step, true);
        uint256 index = _panels ? _drawPanel(id, t.mediators)
            : _nthSetBit(t.mediators, beacon.draw(id) % _popcount(t.mediators));
        d.mediator = uint8(index + 1);
        emit MediatorSelected(id, mediators[index]);
        _move(id, d, DealProtocol.State.ResultsChecked, log);
        deals[id] = d;
    }

    /// The drawn mediator gives its verdict before the mediation deadline (counted from the check); it is paid
    /// the fee and the deal settles.
    function mediate(Terms calldata t, bool accept) external nonReentrant {
        if (_panels) revert ConsortiumEnabled();
        Deal memory d = deals[dealId(t)];
        address mediator = d.mediator == 0 ? address(0) : mediators[d.mediator - 1];
        (bytes32 id,) = _load(t, DealProtocol.State.ResultsChecked, _via(mediator), address(0));
        _before(id, d.since + deadlineMediate);
        uint256[] memory log = _settleLog(t);
        _out(t, d, log, t.client, mediator, _amounts(t).fee, DealProtocol.Reason.MediationFee,
            DealProtocol.Direction.PaidOut, DealProtocol.Step.Mediate);
        _finish(id, t, d, accept ? DealProtocol.State.MediationAccepted : DealProtocol.State.MediationRejected, log);
    }

    /// A member of the panel now voting votes before the mediation deadline (counted from the check) and declares
    /// whether it re-ran the job (the chain cannot observe a re-run: a dissenter who did not re-run can claim the
    /// re-run cost). The level's last vote tallies: a verdict pays the panel and settles the deal; no consensus
    /// seats the next level, whose new members vote in turn.
    function vote(Terms calldata t, bool accept, bool reran) external nonReentrant {
        if (!_panels) revert ConsortiumDisabled();
        bytes32 id = dealId(t);
        Deal memory d = deals[id];
        if (d.since == 0) revert UnknownDeal(id);
        Panel storage p = panels[id];
        uint256 size = _levelSize(p.level, p.available);
        uint256 seat = _seatOf(id, p, size);
        if (d.state != DealProtocol.State.ResultsChecked) revert WrongState(id, d.state);
        _before(id, d.since + deadlineMediate);
        uint64 bit = uint64(1) << seat;
        if (p.voted & bit != 0) revert AlreadyVoted(id, msg.sender);
        p.voted |= bit;
        if (accept) p.accepts |= bit;
        if (reran) p.reran |= bit;
        emit Voted(id, msg.sender, accept, reran);
        if (_popcount(p.voted) < size) return;
        (bool done, bool verdict) = _tally(p, size);
        if (!done) {
            p.level += 1;
            emit PanelEscalated(id, p.level, _levelSize(p.level, p.available));
            return;
        }
        uint256[] memory log = _settleLog(t);
        _payPanel(t, d, p, size, verdict, log);
        _finish(id, t, d, verdict ? DealProtocol.State.MediationAccepted : DealProtocol.State.MediationRejected, log);
    }

    /// After the agreement deadline without both agreements, either party releases what was escrowed.
    function timeoutAgree(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.DealNegotiating, t.client, t.node);
        _after(id, d.since + deadlineAgree);
        _finish(id, t, d, DealProtocol.State.TimeoutAgree, _settleLog(t));
    }

    /// After the submit deadline without a result, the client ends the deal; the node's collateral is slashed.
    function timeoutSubmitResults(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.DealAgreed, t.client, address(0));
        _after(id, d.since + deadlineSubmit);
        _finish(id, t, d, DealProtocol.State.TimeoutSubmitResults, _settleLog(t));
    }

    /// After the judge deadline without a judgement, the node is paid and the client's collateral slashed.
    function timeoutJudgeResults(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.ResultsSubmitted, t.node, address(0));
        _after(id, d.since + deadlineJudge);
        _finish(id, t, d, DealProtocol.State.TimeoutJudgeResults, _settleLog(t));
    }

    /// After the mediation deadline (counted from the check) without a verdict, either party releases the escrows.
    function timeoutMediateResults(Terms calldata t) external nonReentrant {
        (bytes32 id, Deal memory d) = _load(t, DealProtocol.State.ResultsChecked, t.client, t.node);
        _after(id, d.since + deadlineMediate);
        _finish(id, t, d, DealProtocol.State.TimeoutMediateResults, _settleLog(t));
    }

    // ------------------------------------------------------------------ batched happy path (EIP-712)

    /// Anyone (the solver) settles many accepted deals at once: both parties signed Accepted(deal, resultHash).
    /// Each deal goes through the same escrow steps as the one-call-per-step path, out of free balances only.
    function settleSigned(Signed[] calldata batch) external nonReentrant {
        for (uint256 i = 0; i < batch.length; ++i) {
            Signed calldata s = batch[i];
            Terms calldata t = s.terms;
            bytes32 id = dealId(t);
            if (deals[id].since != 0) revert WrongState(id, deals[id].state);
            _checkTerms(t);
            bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(ACCEPTED_TYPEHASH, id, s.resultHash)));
            if (ECDSA.recover(digest, s.clientSignature) != t.client) revert BadSignature(id, t.client);
            if (ECDSA.recover(digest, s.nodeSignature) != t.node) revert BadSignature(id, t.node);
            emit DealCreated(id, t);
            Deal memory d = Deal(DealProtocol.State.DealNegotiating, CLIENT_AGREED | NODE_AGREED, 0,
                uint40(block.number), 0);
            Amounts memory a = _amounts(t);
            uint256[] memory log = _settleLog(t);
            _in(t, d, log, t.client, a.payment, DealProtocol.Reason.PaymentCollateral, DealProtocol.Step.Agree, false);
            _in(t, d, log, t.client, a.judge, DealProtocol.Reason.JudgeTimeoutCollateral, DealProtocol.Step.Agree,
                false);
            _in(t, d, log, t.client, _clientPaysTax ? _tax(a.jobCost) : 0, DealProtocol.Reason.Tax,
                DealProtocol.Step.Agree, false);
            _in(t, d, log, t.node, a.submit, DealProtocol.Reason.SubmitTimeoutCollateral, DealProtocol.Step.Agree,
                false);
            _advance(d, DealProtocol.State.DealAgreed); // one StateChanged for the whole path (the tree fixes it)
            _out(t, d, log, t.node, address(0), a.submit, DealProtocol.Reason.SubmitTimeoutCollateral,
                DealProtocol.Direction.Refunded, DealProtocol.Step.Submit);
            _in(t, d, log, t.node, a.results, DealProtocol.Reason.ResultsCollateral, DealProtocol.Step.Submit, false);
            emit ResultsPosted(id, s.resultHash, t.instructions);
            _advance(d, DealProtocol.State.ResultsSubmitted);
            _finish(id, t, d, DealProtocol.State.ResultsAccepted, log);
        }
    }

    // ------------------------------------------------------------------ views

    /// The deal id: the EIP-712 hash of the terms under this contract's domain (chain id and address).
    function dealId(Terms calldata t) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(TERMS_TYPEHASH, t)));
    }

    function escrowOf(bytes32 id) external view returns (uint256) {
        return deals[id].escrow;
    }

    /// The transition table, for the drift test against mechanisms/protocol.py.
    function isLegal(DealProtocol.State from, DealProtocol.State to) external pure returns (bool) {
        return DealProtocol.isLegal(from, to);
    }

    /// The deployed module (replication or whistleblowing) moves value between free balances: the whistleblower
    /// passes on what exceeds its reward, right after the settlement that credited it (the module logs the move).
    function moduleMove(address from, address to, uint256 amount) external {
        if (msg.sender != address(replication)) revert NotParty(0, msg.sender);
        _debit(from, amount);
        _credit(to, amount);
    }

    // ------------------------------------------------------------------ settlement (mechanisms/lilypad_v2.settle)

    /// Release every escrow the deal still holds for its terminal state, in the twin's order, then require the
    /// deal's escrow to be empty: a settlement can never pay out of another deal's escrow.
    function _finish(bytes32 id, Terms calldata t, Deal memory d, DealProtocol.State to, uint256[] memory log)
        internal
    {
        _advance(d, to); // the settlement below reads the terminal state (the slash destination, the moves' roles)
        Amounts memory a = _amounts(t);
        bool paid = to == DealProtocol.State.ResultsAccepted || to == DealProtocol.State.TimeoutJudgeResults
            || to == DealProtocol.State.MediationAccepted
            || (to == DealProtocol.State.MediationRejected && !forfeitPayment);
        _releaseClient(t, d, log, a, paid);
        _releaseNode(t, d, log, a);
        if (_staking) _stakes(t, to == DealProtocol.State.MediationRejected, paid ? a.jobCost : 0, log);
        if (_jackpot) _taxes(id, t, d, log, a.jobCost, paid);
        if (to == DealProtocol.State.TimeoutMediateResults) {
            _out(t, d, log, t.client, address(0), a.fee, DealProtocol.Reason.MediationFee,
                DealProtocol.Direction.Refunded, DealProtocol.Step.Settle);
        }
        if (d.escrow != 0) revert EscrowNotSettled(id, d.escrow);
        d.since = uint40(block.number);
        _emit(id, to, log);
        deals[id] = d;
    }

    /// The client's escrows at settlement: the job payment, the rest of its payment escrow, its judge collateral.
    function _releaseClient(Terms calldata t, Deal memory d, uint256[] memory log, Amounts memory a, bool paid)
        internal
    {
        DealProtocol.State s = d.state;
        DealProtocol.Step step = DealProtocol.Step.Settle;
        bool clientIn = d.flags & CLIENT_AGREED != 0;
        if (paid) {
            _out(t, d, log, t.client, t.node, a.jobCost, DealProtocol.Reason.JobPayment,
                DealProtocol.Direction.PaidOut, step);
        }
        if (clientIn) {
            _out(t, d, log, t.client, address(0), a.payment - (paid ? a.jobCost : 0),
                DealProtocol.Reason.PaymentCollateral, DealProtocol.Direction.Refunded, step);
        }
        if (clientIn && (s == DealProtocol.State.TimeoutAgree || s == DealProtocol.State.TimeoutSubmitResults
                    || s == DealProtocol.State.ResultsAccepted)) {
            _out(t, d, log, t.client, address(0), a.judge, DealProtocol.Reason.JudgeTimeoutCollateral,
                DealProtocol.Direction.Refunded, step);
        }
        if (s == DealProtocol.State.TimeoutJudgeResults) {
            _out(t, d, log, t.client, _slashTo(t, t.client, d), a.judge, DealProtocol.Reason.JudgeTimeoutCollateral,
                DealProtocol.Direction.Slashed, step);
        }
    }

    /// The node's escrows at settlement: its submit collateral (agree timeouts) or its results collateral.
    function _releaseNode(Terms calldata t, Deal memory d, uint256[] memory log, Amounts memory a) internal {
        DealProtocol.State s = d.state;
        DealProtocol.Step step = DealProtocol.Step.Settle;
        bool rejected = s == DealProtocol.State.MediationRejected;
        bool submitted = s != DealProtocol.State.TimeoutAgree && s != DealProtocol.State.TimeoutSubmitResults;
        if (d.flags & NODE_AGREED != 0 && s == DealProtocol.State.TimeoutAgree) {
            _out(t, d, log, t.node, address(0), a.submit, DealProtocol.Reason.SubmitTimeoutCollateral,
                DealProtocol.Direction.Refunded, step);
        }
        if (s == DealProtocol.State.TimeoutSubmitResults) {
            _out(t, d, log, t.node, _slashTo(t, t.node, d), a.submit, DealProtocol.Reason.SubmitTimeoutCollateral,
                DealProtocol.Direction.Slashed, step);
        }
        if (submitted && !rejected) {
            _out(t, d, log, t.node, address(0), a.results, DealProtocol.Reason.ResultsCollateral,
                DealProtocol.Direction.Refunded, step);
        }
        if (rejected) {
            _out(t, d, log, t.node, _slashTo(t, t.node, d), a.results, DealProtocol.Reason.ResultsCollateral,
                DealProtocol.Direction.Slashed, step);
        }
    }

    /// Who receives value slashed from `party` (mechanisms.lilypad_v2.slash_destination); the replication module
    /// redirects a node's slashes (mechanisms.replication.slash_destinations).
    function _slashTo(Terms calldata t, address party, Deal memory d) internal returns (address to) {
        to = protocol;
        if (slashTo == SLASH_BURN) to = BURN;
        if (slashTo == SLASH_COUNTERPARTY) to = party == t.client ? t.node : t.client;
        if (slashTo == SLASH_MEDIATOR && d.mediator != 0) to = mediators[d.mediator - 1];
        if (party == t.node && address(replication) != address(0)) {
            to = replication.nodeSlashTo(dealId(t), t.client, d.state, to);
        }
    }

    /// Who may take a step: `role`, or only the replication module when it is deployed.
    function _via(address role) internal view returns (address) {
        return address(replication) == address(0) ? role : address(replication);
    }

    // ------------------------------------------------------------------ consortium panels (PanelModule)

    /// Seat up to `_seats` members, one by one, each the (word mod remaining)-th of the mutual mediators not yet
    /// seated, the word being the beacon's for (id, seat). Returns the first member (the deal's mediator).
    function _drawPanel(bytes32 id, uint64 mask) internal returns (uint256) {
        Panel storage p = panels[id];
        address[] memory members = new address[](_seats);
        uint256 k = 0;
        for (; k < _seats && mask != 0; ++k) {
            uint256 index = _nthSetBit(mask, beacon.draw(keccak256(abi.encode(id, k))) % _popcount(mask));
            _seat(p, k, index);
            members[k] = mediators[index];
            mask &= ~(uint64(1) << index);
        }
        p.available = uint8(k);
        assembly {
            mstore(members, k)
        }
        emit PanelDrawn(id, members);
        return _member(p, 0);
    }

    /// The caller's seat in the panel now voting (its first `size` seats).
    function _seatOf(bytes32 id, Panel storage p, uint256 size) internal view returns (uint256) {
        for (uint256 s = 0; s < size; ++s) {
            if (mediators[_member(p, s)] == msg.sender) return s;
        }
        revert NotParty(id, msg.sender);
    }

    /// The panel's fees out of the client's fee escrow, seat by seat as mechanisms.consortium.settle_mediation: what
    /// the member keeps, then what a dissenter forfeits; then the unused seats' fees go back to the client.
    function _payPanel(Terms calldata t, Deal memory d, Panel storage p, uint256 size, bool verdict,
        uint256[] memory log) internal {
        DealProtocol.Step step = DealProtocol.Step.Mediate;
        DealProtocol.Reason fee = DealProtocol.Reason.MediationFee;
        for (uint256 s = 0; s < size; ++s) {
            uint256 kept = _kept(p, s, verdict, t.module);
            if (kept != 0) {
                d.escrow -= uint128(kept);
                balanceOf[mediators[_member(p, s)]] += kept;
                _record(log, uint256(ROLE_CLIENT) << 152 | (ROLE_FIRST_SEAT + s) << 160
                    | _pack(kept, fee, DealProtocol.Direction.PaidOut, step));
            }
            if (_dissentTo == DISSENT_PAYER) {
                _out(t, d, log, t.client, address(0), memberFee - kept, fee, DealProtocol.Direction.Refunded, step);
            } else {
                _out(t, d, log, t.client, _dissentTo == DISSENT_BURN ? BURN : protocol, memberFee - kept, fee,
                    DealProtocol.Direction.Slashed, step);
            }
        }
        _out(t, d, log, t.client, address(0), panelFee() - memberFee * size, fee, DealProtocol.Direction.Refunded,
            step);
    }

    // ------------------------------------------------------------------ tax and jackpot (JackpotModule)

    /// End the round: its claims share the pool as it stood when the round began; the next round begins.
    function payJackpot() external nonReentrant {
        if (!_jackpot) revert JackpotDisabled();
        uint256 due = roundStartBlock + _roundBlocks;
        if (block.number < due) revert DeadlineNotReached(bytes32(0), due);
        uint256 n = claimDeals.length;
        uint256 each = _each(roundStartPool, n);
        for (uint256 k = 0; k < n && each != 0; ++k) {
            balanceOf[JACKPOT] -= each;
            balanceOf[claimants[k]] += each;
            emit JackpotPaid(claimDeals[k], claimants[k], each);
        }
        delete claimDeals;
        delete claimants;
        roundStartPool = balanceOf[JACKPOT];
        roundStartBlock = block.number;
    }

    /// The tax of a settled deal (mechanisms.tax_jackpot.settle), then the client's claim if mediation rejected.
    function _taxes(bytes32 id, Terms calldata t, Deal memory d, uint256[] memory log, uint256 jobCost, bool paid)
        internal
    {
        uint256 tax = _tax(jobCost);
        DealProtocol.Step step = DealProtocol.Step.Settle;
        if (_clientPaysTax && paid) {
            _out(t, d, log, t.client, JACKPOT, tax, DealProtocol.Reason.Tax, DealProtocol.Direction.PaidOut, step);
        } else if (_clientPaysTax && d.flags & CLIENT_AGREED != 0) {
            _out(t, d, log, t.client, address(0), tax, DealProtocol.Reason.Tax, DealProtocol.Direction.Refunded, step);
        } else if (paid && tax != 0) {
            balanceOf[t.node] -= tax; // out of the payment this settlement just credited
            balanceOf[JACKPOT] += tax;
            _record(log, uint256(ROLE_NODE) << 152 | uint256(ROLE_JACKPOT) << 160
                | _pack(tax, DealProtocol.Reason.Tax, DealProtocol.Direction.Spent, step));
        }
        if (d.state == DealProtocol.State.MediationRejected) _claim(id, t.client);
    }

    // ------------------------------------------------------------------ internals

    /// The deal of `t` in state `expected`, called by `role` (or `alt`, when not zero).
    function _load(Terms calldata t, DealProtocol.State expected, address role, address alt)
        internal
        view
        returns (bytes32 id, Deal memory d)
    {
        id = dealId(t);
        d = deals[id];
        if (d.since == 0) revert UnknownDeal(id);
        if (msg.sender != role && (alt == address(0) || msg.sender != alt)) revert NotParty(id, msg.sender);
        if (d.state != expected) revert WrongState(id, d.state);
    }

    function _before(bytes32 id, uint256 deadline) internal view {
        if (block.number > deadline) revert DeadlinePassed(id, deadline);
    }

    function _after(bytes32 id, uint256 deadline) internal view {
        if (block.number <= deadline) revert DeadlineNotReached(id, deadline);
    }

    function _move(bytes32 id, Deal memory d, DealProtocol.State to, uint256[] memory log) internal {
        _advance(d, to);
        d.since = uint40(block.number);
        _emit(id, to, log);
    }

    function _advance(Deal memory d, DealProtocol.State to) internal pure {
        if (!DealProtocol.isLegal(d.state, to)) revert IllegalTransition(d.state, to);
        d.state = to;
    }

    /// A log of moves: slot 0 counts them, slots 1.. hold them, so the array starting one word later is exactly
    /// the moves (its length word is the count) and can be emitted without copying.
    function _newLog() internal pure returns (uint256[] memory log) {
        log = new uint256[](MAX_MOVES + 1);
    }

    /// The staking module's part of a settlement (slash destination resolved here, where the deal is known).
    function _stakes(Terms calldata t, bool caught, uint256 paidCost, uint256[] memory log) internal {
        uint8 to = _stakeSlashTo;
        (address dest, uint256 role) = to == STAKE_SLASH_CLIENT ? (t.client, uint256(ROLE_CLIENT))
            : to == STAKE_SLASH_PROTOCOL ? (protocol, uint256(ROLE_PROTOCOL)) : (BURN, uint256(ROLE_BURN));
        _settleStakes(t.node, paidCost * _feeShareBps / BPS, caught, dest, role, log);
    }

    /// A log large enough for a settlement: the deal's own moves plus a slash and a fee per staker of its node.
    function _settleLog(Terms calldata t) internal view returns (uint256[] memory log) {
        uint256 stakers = _staking ? backers[t.node].length : 0;
        log = new uint256[](MAX_MOVES + 1 + 2 * stakers + (_panels ? 2 * _seats + 1 : 0));
    }

    function _takeFrom(address party, uint256 amount) internal override {
        uint256 free = balanceOf[party];
        if (free < amount) {
            token.safeTransferFrom(party, address(this), amount - free);
            free = amount;
        }
        balanceOf[party] = free - amount;
    }

    function _credit(address to, uint256 amount) internal override {
        balanceOf[to] += amount;
    }

    function _debit(address from, uint256 amount) internal override {
        balanceOf[from] -= amount;
    }

    function _logMove(
        uint256[] memory log,
        uint256 amount,
        DealProtocol.Reason reason,
        DealProtocol.Direction direction,
        uint256 payerRole,
        uint256 payeeRole
    ) internal pure override {
        _record(log, payerRole << 152 | payeeRole << 160 | _pack(amount, reason, direction, DealProtocol.Step.Settle));
    }

    function _record(uint256[] memory log, uint256 packed) internal pure {
        uint256 n = log[0] + 1;
        log[n] = packed; // bounds-checked: at most MAX_MOVES moves between two states
        log[0] = n;
    }

    function _emit(bytes32 id, DealProtocol.State state, uint256[] memory log) internal {
        uint256[] memory moves;
        assembly {
            moves := add(log, 32)
        }
        emit StateChanged(id, state, moves);
        log[0] = 0;
    }

    function _role(Terms calldata t, Deal memory d, address who) internal view returns (uint256) {
        if (who == address(0)) return ROLE_NONE;
        if (who == t.client) return ROLE_CLIENT;
        if (who == t.node) return ROLE_NODE;
        if (d.mediator != 0 && who == mediators[d.mediator - 1]) return ROLE_MEDIATOR;
        if (who == BURN) return ROLE_BURN;
        if (who == JACKPOT) return ROLE_JACKPOT;
        return who == protocol ? ROLE_PROTOCOL : 255; // ReplicationModule.ROLE_REPLICA: the honest replica
    }

    /// A move without its roles (ORed in by the caller).
    function _pack(uint256 amount, DealProtocol.Reason reason, DealProtocol.Direction direction, DealProtocol.Step step)
        internal
        pure
        returns (uint256)
    {
        return amount | uint256(reason) << 128 | uint256(direction) << 136 | uint256(step) << 144;
    }

    /// `party` escrows `amount` into the deal from its free balance, topped up from its tokens if `pull`.
    function _in(
        Terms calldata t,
        Deal memory d,
        uint256[] memory log,
        address party,
        uint256 amount,
        DealProtocol.Reason reason,
        DealProtocol.Step step,
        bool pull
    ) internal {
        if (amount == 0) return;
        uint256 free = balanceOf[party];
        if (free < amount) {
            if (!pull) revert InsufficientBalance(party, amount, free);
            token.safeTransferFrom(party, address(this), amount - free);
            free = amount;
        }
        balanceOf[party] = free - amount;
        d.escrow += uint128(amount);
        _record(log, _role(t, d, party) << 152 | _pack(amount, reason, DealProtocol.Direction.PaidIn, step));
    }

    /// `amount` leaves the deal's escrow (checked: never more than the deal holds) to `payee`, or back to
    /// `payer` when `payee` is zero (a refund).
    function _out(
        Terms calldata t,
        Deal memory d,
        uint256[] memory log,
        address payer,
        address payee,
        uint256 amount,
        DealProtocol.Reason reason,
        DealProtocol.Direction direction,
        DealProtocol.Step step
    ) internal {
        if (amount == 0) return;
        d.escrow -= uint128(amount);
        balanceOf[payee == address(0) ? payer : payee] += amount;
        uint256 roles = _role(t, d, payer) << 152 | _role(t, d, payee) << 160;
        _record(log, roles | _pack(amount, reason, direction, step));
    }

    function _amounts(Terms calldata t) internal view returns (Amounts memory a) {
        a.jobCost = uint256(t.price) * t.instructions;
        a.payment = a.jobCost * paymentCollateralBps / BPS;
        a.judge = judgeTimeoutCollateral;
        a.submit = submitTimeoutCollateral;
        uint256 results = a.jobCost * t.multiplierBps / BPS;
        a.results = results > minDeposit ? results : minDeposit;
        a.fee = mediationFee;
    }

    function _checkTerms(Terms calldata t) internal view {
        if (t.client == t.node) revert InvalidTerms("node");
        if (t.mediators == 0 || t.mediators >> mediators.length != 0) revert InvalidTerms("mediators");
        if (_panels && t.module >= rerunCosts.length) revert InvalidTerms("module");
        if (multipliers.length == 0) {
            if (t.multiplierBps != baseMultiplierBps) revert InvalidTerms("multiplierBps");
        } else {
            bool offered = false;
            for (uint256 i = 0; i < multipliers.length && !offered; ++i) {
                offered = multipliers[i] == t.multiplierBps;
            }
            if (!offered) revert InvalidTerms("multiplierBps");
        }
    }

    /// Index of the k-th (0-based) set bit of `mask`.
    function _nthSetBit(uint64 mask, uint256 k) internal pure returns (uint256) {
        for (uint256 b = 0; b < 64; ++b) {
            if ((mask >> b) & 1 == 1) {
                if (k == 0) return b;
                --k;
            }
        }
        revert InvalidTerms("mediators");
    }
}
