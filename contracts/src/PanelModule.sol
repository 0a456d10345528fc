// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Mediation by a k-of-n consortium (mechanisms/consortium.py), the panel half of the deal contract.
/// @notice At a check the deal contract seats up to `seats` members, drawn one by one from the mediators both
/// parties trust. The first `size` members vote; a side with `threshold` votes wins. Without consensus the panel
/// grows (x `growth`, at most `maxDepth` times, never past the seated members) and the new members vote, each level
/// needing the same share of its larger panel (rounded up); the last level falls back to `fallbackRule`. This module
/// holds the panels and the tally; the deal contract moves the fees (every member is paid `memberFee`; a member who
/// voted against the verdict keeps only the re-run cost of the deal's module, and only if it declared a re-run).
abstract contract PanelModule {
    uint8 public constant FALLBACK_MAJORITY = 0; // ties accept
    uint8 public constant FALLBACK_ACCEPT = 1;
    uint8 public constant FALLBACK_REJECT = 2;
    uint8 public constant DISSENT_BURN = 0;
    uint8 public constant DISSENT_PROTOCOL = 1;
    uint8 public constant DISSENT_PAYER = 2;
    /// Role code of panel seat s in a packed move: ROLE_FIRST_SEAT + s (Deals.StateChanged).
    uint256 public constant ROLE_FIRST_SEAT = 192;
    uint256 internal constant MAX_SEATS = 63; // the twin's bound (panels are 64-bit masks)

    /// The consortium's deployment parameters (mechanisms.consortium.ConsortiumConfig, selection uniform).
    struct PanelConfig {
        bool enabled;
        uint8 size; // n: members of the first panel
        uint8 threshold; // k: votes on one side for a verdict, n/2 < k <= n
        uint8 maxDepth; // escalation levels after the first panel
        uint8 growth; // panel size multiplier per level
        uint8 fallbackRule; // FALLBACK_*
        bool slashDissent; // members against the verdict forfeit their fee beyond their re-run
        uint8 dissentTo; // DISSENT_*
        uint96 memberFee; // paid to each seated member who voted
        uint96[] rerunCosts; // re-run cost per module (a dissenter who re-ran keeps this much)
    }

    /// One deal's panel: seat s holds mediator index + 1 in byte s of `order` (0 = empty seat).
    struct Panel {
        uint256[2] order;
        uint64 voted; // seat bits
        uint64 accepts;
        uint64 reran;
        uint8 level; // escalation level now voting
        uint8 available; // seats filled at the draw
    }

    bool internal immutable _panels;
    uint256 internal immutable _size;
    uint256 internal immutable _threshold;
    uint256 internal immutable _maxDepth;
    uint256 internal immutable _growth;
    uint256 internal immutable _seats; // min(size x growth^maxDepth, 63, registered mediators)
    uint8 internal immutable _fallback;
    bool internal immutable _slashDissent;
    uint8 internal immutable _dissentTo;
    uint256 public immutable memberFee;
    uint96[] public rerunCosts;
    mapping(bytes32 => Panel) internal panels;

    event PanelDrawn(bytes32 indexed id, address[] members);
    event PanelEscalated(bytes32 indexed id, uint256 level, uint256 size);
    event Voted(bytes32 indexed id, address indexed member, bool accept, bool reran);

    error ConsortiumDisabled();
    error ConsortiumEnabled();
    error AlreadyVoted(bytes32 id, address member);
    error InvalidPanel(string field);

    constructor(PanelConfig memory p, uint256 nMediators) {
        _panels = p.enabled;
        _size = p.size;
        _threshold = p.threshold;
        _maxDepth = p.maxDepth;
        _growth = p.growth;
        _fallback = p.fallbackRule;
        _slashDissent = p.slashDissent;
        _dissentTo = p.dissentTo;
        memberFee = p.memberFee;
        if (!p.enabled) return;
        if (p.size == 0 || p.size > nMediators || p.size > MAX_SEATS) revert InvalidPanel("size");
        if (p.threshold <= p.size / 2 || p.threshold > p.size) revert InvalidPanel("threshold");
        if (p.growth < 2 || p.growth > 8) revert InvalidPanel("growth");
        if (p.maxDepth > 6) revert InvalidPanel("maxDepth");
        if (p.fallbackRule > FALLBACK_REJECT) revert InvalidPanel("fallback");
        if (p.dissentTo > DISSENT_PAYER) revert InvalidPanel("dissentTo");
        if (p.rerunCosts.length == 0) revert InvalidPanel("rerunCosts");
        for (uint256 i = 0; i < p.rerunCosts.length; ++i) {
            if (p.rerunCosts[i] > p.memberFee) revert InvalidPanel("memberFee");
        }
        uint256 seats = uint256(p.size) * uint256(p.growth) ** p.maxDepth;
        seats = seats < MAX_SEATS ? seats : MAX_SEATS;
        _seats = seats < nMediators ? seats : nMediators;
        rerunCosts = p.rerunCosts;
    }

    /// The fee the client escrows at a check: every seat's fee (the unused seats' share is refunded at the verdict).
    function panelFee() public view returns (uint256) {
        return memberFee * _seats;
    }

    /// Registry index of the mediator in `seat` (the panel must have that seat).
    function _member(Panel storage p, uint256 seat) internal view returns (uint256) {
        return (p.order[seat >> 5] >> ((seat & 31) * 8) & 0xFF) - 1;
    }

    function _seat(Panel storage p, uint256 seat, uint256 index) internal {
        p.order[seat >> 5] |= (index + 1) << ((seat & 31) * 8);
    }

    /// Members voting at `level` (mechanisms.consortium: min(size x growth^level, seats, seated)).
    function _levelSize(uint256 level, uint256 available) internal view returns (uint256 n) {
        n = _size * _growth ** level;
        if (n > _seats) n = _seats;
        if (n > available) n = available;
    }

    /// Count the votes of the current level: (final, verdict). Not final means the panel grows.
    function _tally(Panel storage p, uint256 size) internal view returns (bool, bool) {
        uint256 accepts = _popcount(p.accepts);
        uint256 rejects = size - accepts;
        uint256 k = (_threshold * size + _size - 1) / _size; // ceil: the same share of a larger panel
        if (accepts >= k || rejects >= k) return (true, accepts >= k);
        if (p.level < _maxDepth && _levelSize(p.level + 1, p.available) > size) return (false, false);
        if (_fallback == FALLBACK_MAJORITY) return (true, accepts >= rejects);
        return (true, _fallback == FALLBACK_ACCEPT);
    }

    /// What a member keeps of its fee: all of it, or when it dissents (and dissent is slashed) its re-run cost if
    /// it declared one, else nothing.
    function _kept(Panel storage p, uint256 seat, bool verdict, uint256 module) internal view returns (uint256) {
        bool accepted = p.accepts >> seat & 1 == 1;
        if (!_slashDissent || accepted == verdict) return memberFee;
        return p.reran >> seat & 1 == 1 ? rerunCosts[module] : 0;
    }

    function _popcount(uint64 mask) internal pure returns (uint256 n) {
        for (; mask != 0; mask &= mask - 1) ++n;
    }
}
