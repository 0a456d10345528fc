// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {BribeProof, IDealsOfModule} from "./BribeProof.sol";
import {DealProtocol} from "./DealProtocol.sol";
import {IDeals} from "./IDeals.sol";

/// @title What the replication module reads from, and calls on, the deal contract.
interface IDealsOfReplication {
    function deals(bytes32 id) external view returns (DealProtocol.State, uint8, uint8, uint40, uint128);
    function mediators(uint256 index) external view returns (address);
    function dealId(IDeals.Terms calldata t) external view returns (bytes32);
    function submitResults(IDeals.Terms calldata t, bytes32 resultHash, uint64 instructions) external;
    function mediate(IDeals.Terms calldata t, bool accept) external;
}

/// @title Replication (mechanisms/replication.py): r deals of one job, commit-reveal, the prisoner's contract.
/// @notice A separate contract (the deal contract is at the EIP-170 code limit) that the deal contract trusts for two
/// steps: with replication deployed, a node posts its result only through `reveal` / `post` here, and a mediator
/// gives its verdict only through `mediate` here; the deal contract asks `nodeSlashTo` where a node's slashed value
/// goes. The client opens a job (its replica deals, in replica order) before any of them is agreed, so a node sees
/// the job it joins. With commit-reveal each replica commits keccak256(abi.encode(result, salt)) first; reveals open
/// once every replica has committed or `commitBlocks` after the job opened, whichever is first. Rules: a commit after
/// the reveals opened is refused (`CommitClosed`), so that replica can no longer post and its deal ends at the submit
/// timeout; a reveal that does not match its commitment reverts (`BadReveal`, nothing moves) and the node may reveal
/// the committed result until its submit deadline, after which the submit timeout slashes it as any late node.
/// The chain cannot see ground truth: a rejecting mediator declares the correct result's hash with its verdict (it
/// re-ran the job, so it is as trusted for this as for the verdict). The prisoner's contract then pays a rejected
/// replica's results collateral to the node of the job's first replica (in replica order) that revealed the correct
/// result and is not MediationRejected at that moment (the twin settles a round at once; on chain a replica
/// rejected later in the same round would still count, which only happens when a mediator rejects a correct result).
/// With whistleblowing's mediators' proof (BribeProof) a drawn mediator may instead prove the node's bribe.
contract ReplicationModule is BribeProof {
    uint8 public constant TO_HONEST_REPLICA = 0;
    uint8 public constant TO_CLIENT = 1;
    uint8 public constant TO_BURN = 2;
    /// Role code of the honest replica's node as payee of a packed move (Deals.StateChanged).
    uint256 public constant ROLE_REPLICA = 255;
    address public constant BURN = 0x000000000000000000000000000000000000dEaD;

    struct Job {
        bytes32[] ids; // the replica deals, in replica order
        address client;
        uint40 opened; // block the job was opened
        uint8 committed; // replicas that committed
        bytes32 correct; // the result a rejecting mediator declared correct (0: none yet)
    }

    struct Replica {
        address node;
        bool revealed;
        uint64 job; // 0: the deal belongs to no job (node, flag and job share a slot: the reveal fills no new one)
        bytes32 posted; // the commitment until the reveal, then the result
    }

    IDealsOfReplication public immutable deals;
    uint256 public immutable replicas; // at most this many deals per job
    bool public immutable commitReveal;
    uint8 public immutable wrongDepositTo; // TO_HONEST_REPLICA | TO_CLIENT | TO_BURN
    uint256 public immutable commitBlocks; // the commit window, counted from the job's opening

    uint64 public jobCount; // jobs are numbered from 1
    mapping(uint64 => Job) internal jobs;
    mapping(bytes32 => Replica) public replicaOf;

    event JobOpened(uint64 indexed job, address indexed client, bytes32[] ids);
    event Committed(bytes32 indexed id, bytes32 commitment);
    event Revealed(bytes32 indexed id, bytes32 result);
    event CorrectDeclared(uint64 indexed job, bytes32 result);
    /// The deal's slashed results collateral went to `node`, the honest replica (role ROLE_REPLICA in its moves).
    event HonestReplicaPaid(bytes32 indexed id, address node);

    error InvalidReplication(string field);
    error InvalidJob(string field);
    error NotReplica(bytes32 id);
    error AlreadyCommitted(bytes32 id);
    error NotCommitted(bytes32 id);
    error CommitClosed(bytes32 id);
    error RevealNotOpen(bytes32 id);
    error BadReveal(bytes32 id);
    error CommitRevealEnabled();
    error CommitRevealDisabled();

    constructor(IDealsOfReplication deals_, uint256 replicas_, bool commitReveal_, uint8 wrongDepositTo_,
        uint256 commitBlocks_, bool bribeProofs_, uint256 rewardBps_) BribeProof(bribeProofs_, rewardBps_) {
        if (address(deals_) == address(0)) revert InvalidReplication("deals");
        if (replicas_ == 0 || replicas_ > 8) revert InvalidReplication("replicas");
        if (wrongDepositTo_ > TO_BURN) revert InvalidReplication("wrongDepositTo");
        if (commitReveal_ && commitBlocks_ == 0) revert InvalidReplication("commitBlocks");
        deals = deals_;
        replicas = replicas_;
        commitReveal = commitReveal_;
        wrongDepositTo = wrongDepositTo_;
        commitBlocks = commitBlocks_;
    }

    /// The client opens a job: its replica deals (1 to `replicas`, distinct nodes, none agreed yet), in replica order.
    function open(IDeals.Terms[] calldata ts) external returns (uint64 job) {
        if (ts.length == 0 || ts.length > replicas) revert InvalidJob("replicas");
        bytes32[] memory ids = new bytes32[](ts.length);
        for (uint256 k = 0; k < ts.length; ++k) {
            IDeals.Terms calldata t = ts[k];
            bytes32 id = deals.dealId(t);
            if (t.client != msg.sender) revert NotParty(id, msg.sender);
            (,,, uint40 since,) = deals.deals(id);
            if (since != 0) revert InvalidJob("agreed"); // the node must see the job before it agrees
            if (replicaOf[id].job != 0) revert InvalidJob("taken");
            for (uint256 j = 0; j < k; ++j) {
                if (ts[j].node == t.node) revert InvalidJob("node");
            }
            ids[k] = id;
        }
        job = ++jobCount;
        for (uint256 k = 0; k < ts.length; ++k) {
            replicaOf[ids[k]] = Replica(ts[k].node, false, job, 0);
        }
        jobs[job] = Job(ids, msg.sender, uint40(block.number), 0, 0);
        emit JobOpened(job, msg.sender, ids);
    }

    /// Commit-reveal, step one: the node commits keccak256(abi.encode(result, salt)) while its deal is agreed.
    function commit(IDeals.Terms calldata t, bytes32 commitment) external {
        if (!commitReveal) revert CommitRevealDisabled();
        (bytes32 id, Replica storage r, Job storage j) = _replica(t);
        if (r.posted != 0) revert AlreadyCommitted(id);
        if (commitment == 0) revert InvalidJob("commitment");
        if (_revealOpen(j)) revert CommitClosed(id);
        r.posted = commitment;
        j.committed += 1;
        emit Committed(id, commitment);
    }

    /// Commit-reveal, step two: the node reveals its committed result, which is posted to the deal contract.
    function reveal(IDeals.Terms calldata t, bytes32 result, bytes32 salt) external {
        if (!commitReveal) revert CommitRevealDisabled();
        (bytes32 id, Replica storage r, Job storage j) = _replica(t);
        if (r.posted == 0) revert NotCommitted(id);
        if (!_revealOpen(j)) revert RevealNotOpen(id);
        if (keccak256(abi.encode(result, salt)) != r.posted) revert BadReveal(id);
        _post(t, id, r, result);
    }

    /// Without commit-reveal the node posts its result directly (it can see the results already posted). A deal
    /// in no job (bought once) is posted directly in either mode, so a node that agreed to one is never stuck.
    function post(IDeals.Terms calldata t, bytes32 result) external {
        bytes32 id = deals.dealId(t);
        if (replicaOf[id].job == 0) {
            if (msg.sender != t.node) revert NotParty(id, msg.sender);
            emit Revealed(id, result);
            deals.submitResults(t, result, t.instructions);
            return;
        }
        if (commitReveal) revert CommitRevealEnabled();
        (, Replica storage r,) = _replica(t);
        _post(t, id, r, result);
    }

    /// The deal's drawn mediator gives its verdict; a rejection declares the correct result's hash.
    function mediate(IDeals.Terms calldata t, bool accept, bytes32 correct) external {
        _verdict(t, accept, correct);
        deals.mediate(t, accept);
    }

    /// The drawn mediator proves the node's bribe offer (BribeProof) instead of its verdict, declaring the correct
    /// result as a rejection does: the result is rejected and the mediator keeps `rewardBps` of the node's slashed
    /// results collateral, passing on the rest to where it would have gone (the prisoner's contract included).
    function reportBribe(IDeals.Terms calldata t, bytes32 correct, bytes calldata signature) external {
        bytes32 id = _verdict(t, false, correct);
        _proveBribe(t, id, signature);
        deals.mediate(t, false);
        _passOn(t, id);
    }

    /// Where the deal contract sends value slashed from a node (called during its settlement): `base` unless the
    /// mechanism redirects it (client, burn, or the prisoner's contract for a rejected replica), and a proven
    /// briber's rejected result to the reporting mediator (who passes on the rest to that destination).
    function nodeSlashTo(bytes32 id, address client, DealProtocol.State state, address base)
        external
        returns (address)
    {
        if (msg.sender != address(deals)) revert OnlyDeals(msg.sender);
        address to = base;
        address honest;
        if (wrongDepositTo == TO_CLIENT) to = client;
        if (wrongDepositTo == TO_BURN) to = BURN;
        if (wrongDepositTo == TO_HONEST_REPLICA && state == DealProtocol.State.MediationRejected) {
            honest = _honest(id);
            if (honest != address(0)) to = honest;
        }
        address dest = _bribeSlashTo(id, state, to); // a proven briber's deposit rewards the mediator instead
        if (honest != address(0) && dest == honest) emit HonestReplicaPaid(id, honest);
        return dest;
    }

    function jobOf(uint64 job) external view returns (bytes32[] memory ids, address client, uint256 opened,
        uint256 committed, bytes32 correct) {
        Job storage j = jobs[job];
        return (j.ids, j.client, j.opened, j.committed, j.correct);
    }

    function _dealsContract() internal view override returns (IDealsOfModule) {
        return IDealsOfModule(address(deals));
    }

    /// The caller must be the deal's drawn mediator; a rejection declares the correct result for the job.
    function _verdict(IDeals.Terms calldata t, bool accept, bytes32 correct) internal returns (bytes32 id) {
        id = deals.dealId(t);
        (,, uint8 m,,) = deals.deals(id);
        if (m == 0 || msg.sender != deals.mediators(m - 1)) revert NotParty(id, msg.sender);
        uint64 job = replicaOf[id].job;
        if (!accept && job != 0 && correct != 0) {
            jobs[job].correct = correct;
            emit CorrectDeclared(job, correct);
        }
    }

    function revealOpen(uint64 job) external view returns (bool) {
        return _revealOpen(jobs[job]);
    }

    /// The first replica of `id`'s job, in replica order, other than `id`, that revealed the declared correct
    /// result and is not MediationRejected: its node (zero when there is none).
    function _honest(bytes32 id) internal view returns (address) {
        Job storage j = jobs[replicaOf[id].job];
        if (j.correct == 0) return address(0);
        for (uint256 k = 0; k < j.ids.length; ++k) {
            bytes32 other = j.ids[k];
            Replica storage r = replicaOf[other];
            if (other == id || !r.revealed || r.posted != j.correct) continue;
            (DealProtocol.State s,,,,) = deals.deals(other);
            if (s != DealProtocol.State.MediationRejected) return r.node;
        }
        return address(0);
    }

    function _replica(IDeals.Terms calldata t) internal view returns (bytes32 id, Replica storage r, Job storage j) {
        id = deals.dealId(t);
        r = replicaOf[id];
        if (r.job == 0) revert NotReplica(id);
        if (msg.sender != t.node) revert NotParty(id, msg.sender);
        (DealProtocol.State s,,,,) = deals.deals(id);
        if (s != DealProtocol.State.DealAgreed) revert WrongState(id, s);
        j = jobs[r.job];
    }

    function _revealOpen(Job storage j) internal view returns (bool) {
        return j.committed == j.ids.length || block.number > j.opened + commitBlocks;
    }

    /// Record the result (effects first) and post it to the deal contract, which checks the deadline and escrows.
    function _post(IDeals.Terms calldata t, bytes32 id, Replica storage r, bytes32 result) internal {
        r.posted = result;
        r.revealed = true;
        emit Revealed(id, result);
        deals.submitResults(t, result, t.instructions);
    }
}
