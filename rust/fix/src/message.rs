//! FIX messages: parsing tag=value bytes into fields and repeating groups, and encoding them.
//!
//! # Parsing
//!
//! [`Message::parse`] checks the frame of one complete message (BeginString, BodyLength,
//! MsgType first in the body, CheckSum) and splits it into fields, in wire order. Each
//! field is a [`FieldRef`]: the tag as `u32` and the value as a byte range into the
//! caller's buffer, so parsing copies no values; the field list itself lives in a
//! [`MessageStorage`] that can be recycled across messages
//! ([`Message::parse_reusing`], [`Message::into_storage`]).
//!
//! Raw data fields (RawDataLength/RawData 95/96, SecureDataLen/SecureData 90/91,
//! XmlDataLen/XmlData 212/213, SignatureLength/Signature 93/89, the Encoded* pairs...)
//! may contain SOH: the parser takes the value's length from the length field instead
//! of scanning for SOH.
//!
//! Every field is classified as [`Section::Header`], [`Section::Body`] or
//! [`Section::Trailer`]. A header field after a body field, or a body field after a
//! trailer field, is remembered ([`Message::out_of_order_tag`]) for validation
//! (SessionRejectReason 14), as QuickFIX does.
//!
//! With a [`Dictionary`] ([`Message::parse_with`]), repeating groups are laid out too:
//! after a NumInGroup field of the message (or header), the following fields that
//! belong to the group form its entries; the delimiter (first field of the group)
//! starts each entry. Group members get a nesting [`FieldRef::depth`] and are reached
//! through [`Message::group`]; top-level getters ([`FieldAccess`]) only see depth 0.
//!
//! Typed getters ([`FieldAccess`]) read strings, integers, sequence numbers, decimals as
//! a fixed-point [`Decimal`], chars, Y/N booleans and UTCTimestamps as nanoseconds
//! since the Unix epoch.
//!
//! # Encoding
//!
//! [`MessageBuilder`] writes a message with the header in the standard order
//! 8, 9, 35, 49, 56, 34, 52, then other header fields, the body, trailer fields and
//! CheckSum, computing BodyLength and CheckSum. It reuses its buffers across messages.
//!
//! # Streaming
//!
//! [`Splitter`] (or the stateless [`scan_frame`]) cuts complete frames out of bytes read
//! from TCP: it waits for partial reads, skips garbage before `8=FIX`, and reports an
//! invalid or oversized BodyLength as a [`SplitError`]. Like QuickFIX, when the declared
//! BodyLength does not end on a CheckSum field it extends the frame to the next
//! `<SOH>10=...<SOH>`; parsing that frame then fails with
//! [`FrameError::BodyLengthMismatch`], so the session layer can ignore it as garbled.
//!
//! ```
//! use nexus_fix::message::{FieldAccess, Message, MessageBuilder};
//!
//! let mut order = MessageBuilder::new("FIX.4.4", "D");
//! order
//!     .sender_comp_id("TW")
//!     .target_comp_id("ISLD")
//!     .msg_seq_num(2)
//!     .sending_time_raw(b"20250101-00:00:00.000")
//!     .field_str(11, "ID1")
//!     .field_char(54, b'1')
//!     .field_str(38, "100");
//! let bytes = order.encode();
//! let msg = Message::parse(&bytes)?;
//! assert_eq!(msg.msg_type(), b"D");
//! assert_eq!(msg.get_str(11)?, "ID1");
//! assert_eq!(msg.get_u64(38)?, 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Range;

use thiserror::Error;

use crate::dictionary::{
    Dictionary, GroupId, FLAG_DATA, FLAG_GROUP_COUNT, FLAG_HEADER, FLAG_TRAILER,
};
use crate::frame::{checksum, FrameError, SOH};

/// Tag numbers of the standard fields used by the codec and the session layer.
pub mod tags {
    /// BeginString (8).
    pub const BEGIN_STRING: u32 = 8;
    /// BodyLength (9).
    pub const BODY_LENGTH: u32 = 9;
    /// CheckSum (10).
    pub const CHECKSUM: u32 = 10;
    /// MsgSeqNum (34).
    pub const MSG_SEQ_NUM: u32 = 34;
    /// MsgType (35).
    pub const MSG_TYPE: u32 = 35;
    /// NewSeqNo (36).
    pub const NEW_SEQ_NO: u32 = 36;
    /// PossDupFlag (43).
    pub const POSS_DUP_FLAG: u32 = 43;
    /// RefSeqNum (45).
    pub const REF_SEQ_NUM: u32 = 45;
    /// SenderCompID (49).
    pub const SENDER_COMP_ID: u32 = 49;
    /// SendingTime (52).
    pub const SENDING_TIME: u32 = 52;
    /// TargetCompID (56).
    pub const TARGET_COMP_ID: u32 = 56;
    /// Text (58).
    pub const TEXT: u32 = 58;
    /// Signature (89).
    pub const SIGNATURE: u32 = 89;
    /// SecureDataLen (90).
    pub const SECURE_DATA_LEN: u32 = 90;
    /// SecureData (91).
    pub const SECURE_DATA: u32 = 91;
    /// SignatureLength (93).
    pub const SIGNATURE_LENGTH: u32 = 93;
    /// RawDataLength (95).
    pub const RAW_DATA_LENGTH: u32 = 95;
    /// RawData (96).
    pub const RAW_DATA: u32 = 96;
    /// PossResend (97).
    pub const POSS_RESEND: u32 = 97;
    /// EncryptMethod (98).
    pub const ENCRYPT_METHOD: u32 = 98;
    /// HeartBtInt (108).
    pub const HEART_BT_INT: u32 = 108;
    /// TestReqID (112).
    pub const TEST_REQ_ID: u32 = 112;
    /// OrigSendingTime (122).
    pub const ORIG_SENDING_TIME: u32 = 122;
    /// GapFillFlag (123).
    pub const GAP_FILL_FLAG: u32 = 123;
    /// ResetSeqNumFlag (141).
    pub const RESET_SEQ_NUM_FLAG: u32 = 141;
    /// XmlDataLen (212).
    pub const XML_DATA_LEN: u32 = 212;
    /// XmlData (213).
    pub const XML_DATA: u32 = 213;
    /// RefTagID (371).
    pub const REF_TAG_ID: u32 = 371;
    /// RefMsgType (372).
    pub const REF_MSG_TYPE: u32 = 372;
    /// SessionRejectReason (373).
    pub const SESSION_REJECT_REASON: u32 = 373;
    /// BusinessRejectReason (380).
    pub const BUSINESS_REJECT_REASON: u32 = 380;
    /// ApplVerID (1128).
    pub const APPL_VER_ID: u32 = 1128;
    /// DefaultApplVerID (1137).
    pub const DEFAULT_APPL_VER_ID: u32 = 1137;
}

/// Why bytes are not a parsable FIX message (a garbled message, in FIX terms).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The frame is wrong: BeginString, BodyLength, MsgType or CheckSum.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A field's tag is empty or not a number, or the field has no `=`.
    #[error("invalid tag at byte {offset}")]
    InvalidTag {
        /// Offset of the field in the message.
        offset: usize,
    },
    /// A data field's length field is missing or not a number.
    #[error("data field {tag} has no valid length field {length_tag} before it")]
    MissingDataLength {
        /// The data field.
        tag: u32,
        /// The length field it needs.
        length_tag: u32,
    },
    /// A data field is not followed by SOH where its length field says it ends.
    #[error("data field {tag} does not end with SOH after the {declared} bytes its length field declares")]
    DataLengthMismatch {
        /// The data field.
        tag: u32,
        /// The length declared by its length field.
        declared: usize,
    },
    /// The message is longer than 4 GiB.
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
}

/// Why a typed getter could not return a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FieldError {
    /// The field is not present.
    #[error("tag {0} is missing")]
    Missing(u32),
    /// The field's value does not have the expected format.
    #[error("tag {tag} is not a valid {expected}")]
    Format {
        /// The tag.
        tag: u32,
        /// The expected format, e.g. `int`.
        expected: &'static str,
    },
}

/// The part of a message a field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The standard header (8, 9, 35, 49, 56, 34, 52, ...).
    Header = 0,
    /// The message body.
    Body = 1,
    /// The standard trailer (93, 89, 10).
    Trailer = 2,
}

/// Where one field lies in a parsed message: its tag and the range of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef {
    tag: u32,
    start: u32,
    end: u32,
    section: Section,
    depth: u8,
    negative: bool,
}

impl FieldRef {
    /// Returns the tag number (for a tag written with a minus sign, its magnitude; see
    /// [`FieldRef::is_negative`]).
    #[must_use]
    #[inline]
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// Returns whether the tag was written with a minus sign (e.g. `-1=X`), an invalid
    /// tag number that validation rejects with SessionRejectReason 0.
    #[must_use]
    #[inline]
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Returns the tag as a signed number, as RefTagID (371) would carry it.
    #[must_use]
    pub fn signed_tag(&self) -> i64 {
        if self.negative {
            -i64::from(self.tag)
        } else {
            i64::from(self.tag)
        }
    }

    /// Returns the byte range of the value in the message buffer.
    #[must_use]
    #[inline]
    pub fn value_range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Returns the section (header, body, trailer) the field belongs to.
    #[must_use]
    #[inline]
    pub fn section(&self) -> Section {
        self.section
    }

    /// Returns the repeating-group nesting depth: 0 outside groups, 1 for members of a
    /// top-level group entry, 2 for a group nested in it, and so on.
    #[must_use]
    #[inline]
    pub fn depth(&self) -> u8 {
        self.depth
    }

    #[inline]
    fn is_top(&self, tag: u32) -> bool {
        self.tag == tag && self.depth == 0 && !self.negative
    }
}

const NO_PARENT: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupRec {
    pub(crate) count_tag: u32,
    pub(crate) count_idx: u32,
    pub(crate) parent_start: u32,
    pub(crate) first_entry: u32,
    pub(crate) n_entries: u32,
    pub(crate) def: GroupId,
    pub(crate) depth: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryRec {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// Slots of the tag index of a message: a tag's slot is `tag % LOOKUP_SLOTS`.
const LOOKUP_SLOTS: usize = 256;

/// The tag index of a message: per slot (`tag % LOOKUP_SLOTS`), the index of the first
/// field whose tag falls in it, so that a lookup goes straight to a field instead of
/// scanning them all. Each entry carries the generation (message) that wrote it, so
/// that starting a new message clears the index by counting up instead of zeroing it.
#[derive(Debug, Clone)]
struct TagIndex {
    /// Per slot, `generation << 16 | (1 + field index)`; stale when the generation
    /// differs.
    slots: Box<[u32; LOOKUP_SLOTS]>,
    /// The generation of the message being parsed, never 0.
    generation: u32,
}

impl Default for TagIndex {
    fn default() -> Self {
        Self {
            slots: Box::new([0; LOOKUP_SLOTS]),
            generation: 1,
        }
    }
}

impl TagIndex {
    /// Forgets every entry.
    #[inline]
    fn clear(&mut self) {
        self.generation += 1;
        if self.generation > u32::from(u16::MAX) {
            // Once in 65,535 messages: entries of this generation may be left over.
            self.slots.fill(0);
            self.generation = 1;
        }
    }

    /// Notes field `index` with `tag` when it is the first of its slot.
    #[inline(always)]
    fn note(&mut self, tag: u32, index: usize) {
        let slot = &mut self.slots[tag as usize % LOOKUP_SLOTS];
        if *slot >> 16 != self.generation && index < usize::from(u16::MAX) {
            *slot = self.generation << 16 | (index as u32 + 1);
        }
    }

    /// Returns the index of the first field noted in `tag`'s slot.
    #[inline(always)]
    fn first(&self, tag: u32) -> Option<usize> {
        let slot = self.slots[tag as usize % LOOKUP_SLOTS];
        (slot >> 16 == self.generation).then(|| (slot & 0xFFFF) as usize - 1)
    }
}

/// One remembered tag: a field whose first bytes under `mask` are `key` (the digits
/// and the `=`) has `tag`, written in `digits` digits, with the parser's `flags` for it.
#[derive(Debug, Clone, Copy)]
struct TagSlot {
    key: u64,
    mask: u64,
    tag: u32,
    digits: u8,
    flags: u8,
}

impl TagSlot {
    /// Matches no word: no bits under the mask equal 1.
    const EMPTY: Self = Self {
        key: 1,
        mask: 0,
        tag: 0,
        digits: 0,
        flags: 0,
    };
}

/// Slots of the tag cache.
const TAG_SLOTS: usize = 256;

/// The tags of recent fields by their first bytes, so that a field whose tag was seen
/// (in this message or an earlier one parsed into the same storage) takes its tag and
/// its flags with one comparison instead of checking and converting its digits and
/// looking its flags up. A slot holds the bytes of the tag and its `=`: a field
/// starting with exactly those bytes has that tag. The flags depend on the
/// dictionaries: the slots are emptied when a message is parsed with others.
#[derive(Debug, Clone, Default)]
struct TagCache {
    /// None until the storage parses its second message (a storage used once does
    /// not pay for them).
    slots: Option<Box<[TagSlot; TAG_SLOTS]>>,
    used: bool,
    /// The ids of the session and application dictionaries the flags came from
    /// (0: none).
    source: (u64, u64),
}

impl TagCache {
    /// Prepares for a message parsed with the dictionaries of `source`: allocates the
    /// slots on the second message, and empties them when the dictionaries changed.
    #[inline]
    fn prepare(&mut self, source: (u64, u64)) {
        match &mut self.slots {
            Some(slots) => {
                if source != self.source {
                    slots.fill(TagSlot::EMPTY);
                }
            }
            None => {
                if self.used {
                    self.slots = Some(Box::new([TagSlot::EMPTY; TAG_SLOTS]));
                }
                self.used = true;
            }
        }
        self.source = source;
    }
}

/// Where the tokenizer finds the tags (and flags) of fields it has seen before.
trait TagLookup {
    /// The slot remembered for a field starting with `word`, when it matches.
    fn find(&self, word: u64) -> Option<&TagSlot>;
    /// Remembers `slot` for fields starting like `word`.
    fn remember(&mut self, word: u64, slot: TagSlot);
}

impl TagLookup for [TagSlot; TAG_SLOTS] {
    #[inline(always)]
    fn find(&self, word: u64) -> Option<&TagSlot> {
        let slot = &self[tag_slot(word)];
        (word & slot.mask == slot.key).then_some(slot)
    }

    #[inline(always)]
    fn remember(&mut self, word: u64, slot: TagSlot) {
        self[tag_slot(word)] = slot;
    }
}

/// No tag cache: a storage's first message.
struct NoTagCache;

impl TagLookup for NoTagCache {
    #[inline(always)]
    fn find(&self, _word: u64) -> Option<&TagSlot> {
        None
    }

    #[inline(always)]
    fn remember(&mut self, _word: u64, _slot: TagSlot) {}
}

/// Returns the tag cache slot of a field starting with `word`: by its first three bytes
/// (a tag of up to two digits and its `=`, or the start of a longer one).
#[inline(always)]
fn tag_slot(word: u64) -> usize {
    ((word & 0x00FF_FFFF).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// Reusable allocations of a [`Message`]: pass them to [`Message::parse_reusing`] and
/// get them back with [`Message::into_storage`] to parse without allocating.
#[derive(Debug, Clone, Default)]
pub struct MessageStorage {
    fields: Vec<FieldRef>,
    lookup: TagIndex,
    tags: TagCache,
    /// Behind a pointer: a message moves (out of `parse_reusing`, into and out of the
    /// caller's storage) in a few registers' worth of bytes instead of a `memcpy`.
    layout: Box<LayoutStorage>,
}

/// The repeating-group layout of a message.
#[derive(Debug, Clone, Default)]
struct LayoutStorage {
    groups: Vec<GroupRec>,
    entries: Vec<EntryRec>,
    stack: Vec<(u32, u32)>,
    /// Indexes of the fields whose tag a dictionary names as a NumInGroup field,
    /// in order: where the group layout starts looking.
    group_counts: Vec<u32>,
}

impl MessageStorage {
    /// Returns empty storage with room for `fields` fields.
    #[must_use]
    pub fn with_capacity(fields: usize) -> Self {
        Self {
            fields: Vec::with_capacity(fields),
            ..Self::default()
        }
    }

    fn clear(&mut self, options: &ParseOptions<'_>) {
        self.fields.clear();
        self.layout.groups.clear();
        self.layout.entries.clear();
        self.layout.stack.clear();
        self.layout.group_counts.clear();
        self.lookup.clear();
        self.tags.prepare(options.source());
    }

    /// Appends a field, indexing it when it is the first of its slot.
    #[inline(always)]
    fn push(&mut self, field: FieldRef) {
        self.lookup.note(field.tag, self.fields.len());
        self.fields.push(field);
    }

    /// The first top-level field with `tag`, through the index when it can tell.
    #[inline]
    fn find_top(&self, tag: u32) -> Option<&FieldRef> {
        match self.lookup.first(tag) {
            Some(index) => {
                if let Some(f) = self.fields.get(index) {
                    if f.is_top(tag) {
                        return Some(f);
                    }
                }
            }
            // Every field is indexed while there are fewer than u16::MAX.
            None if self.fields.len() < usize::from(u16::MAX) => return None,
            None => {}
        }
        // Another tag in the slot, or this one inside a group first: scan.
        self.fields.iter().find(|f| f.is_top(tag))
    }
}

/// How to parse: dictionaries for groups, header/trailer and data fields, and whether
/// to check the CheckSum.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions<'d> {
    /// The session (transport) dictionary: header, trailer, admin messages. For FIX 4.x
    /// the one dictionary; for FIX 5.x, FIXT 1.1.
    pub session: Option<&'d Dictionary>,
    /// The application dictionary: application message bodies. For FIX 4.x the same as
    /// `session`; for FIX 5.x, e.g. FIX 5.0 SP2.
    pub application: Option<&'d Dictionary>,
    /// Whether to compare CheckSum (10) with the sum of the bytes (default true).
    pub verify_checksum: bool,
}

impl Default for ParseOptions<'_> {
    fn default() -> Self {
        Self {
            session: None,
            application: None,
            verify_checksum: true,
        }
    }
}

impl<'d> ParseOptions<'d> {
    /// Returns options using one dictionary for everything (FIX 4.x).
    #[must_use]
    pub fn with_dictionary(dictionary: &'d Dictionary) -> Self {
        Self {
            session: Some(dictionary),
            application: Some(dictionary),
            verify_checksum: true,
        }
    }

    /// Returns options for FIXT: `session` (FIXT 1.1) and `application` (FIX 5.x).
    #[must_use]
    pub fn fixt(session: &'d Dictionary, application: &'d Dictionary) -> Self {
        Self {
            session: Some(session),
            application: Some(application),
            verify_checksum: true,
        }
    }

    /// The ids of the session and application dictionaries (0: none).
    fn source(&self) -> (u64, u64) {
        (
            self.session.map_or(0, Dictionary::id),
            self.application.map_or(0, Dictionary::id),
        )
    }

    /// Returns the header/trailer/data flags of `tag` (dictionary constants).
    #[inline(always)]
    pub(crate) fn tag_flags(&self, tag: u32) -> u8 {
        let builtin = builtin_flags(tag);
        if self.session.is_none() && self.application.is_none() {
            return builtin;
        }
        let session = self.session.map_or(0, |d| d.flags(tag));
        let application = match (self.session, self.application) {
            (Some(s), Some(a)) if std::ptr::eq(s, a) => session,
            (_, a) => a.map_or(0, |d| d.flags(tag)),
        };
        (builtin & (FLAG_HEADER | FLAG_TRAILER))
            | (session & (FLAG_HEADER | FLAG_TRAILER | FLAG_DATA | FLAG_GROUP_COUNT))
            | (application & (FLAG_DATA | FLAG_GROUP_COUNT))
    }

    /// Returns the length field of data field `tag` (whose flags have `FLAG_DATA`).
    fn length_tag_for_data(&self, tag: u32) -> Option<u32> {
        match (self.session, self.application) {
            (None, None) => builtin_length_for_data(tag),
            (s, a) => s
                .and_then(|d| d.length_field_for_data(tag))
                .or_else(|| a.and_then(|d| d.length_field_for_data(tag))),
        }
    }
}

/// Tags below this have flags without a dictionary ([`builtin_flags`]).
pub(crate) const BUILTIN_TAGS: usize = 1405;

/// Header, trailer and data flags of the tags known without a dictionary.
static BUILTIN_FLAGS: [u8; BUILTIN_TAGS] = builtin_flag_table();

/// Returns the header, trailer and data flags `tag` has without a dictionary.
#[inline(always)]
pub(crate) fn builtin_flags(tag: u32) -> u8 {
    BUILTIN_FLAGS.get(tag as usize).copied().unwrap_or(0)
}

const fn builtin_flag_table() -> [u8; BUILTIN_TAGS] {
    let mut flags = [0u8; BUILTIN_TAGS];
    let header = BUILTIN_HEADER;
    let mut i = 0;
    while i < header.len() {
        flags[header[i] as usize] |= FLAG_HEADER;
        i += 1;
    }
    flags[10] |= FLAG_TRAILER;
    flags[89] |= FLAG_TRAILER;
    flags[93] |= FLAG_TRAILER;
    let mut i = 0;
    while i < BUILTIN_DATA_FIELDS.len() {
        flags[BUILTIN_DATA_FIELDS[i].1 as usize] |= FLAG_DATA;
        i += 1;
    }
    flags
}

/// The header tags QuickFIX recognises without a dictionary, plus SecureData, ApplExtID
/// and the NoHops members.
const BUILTIN_HEADER: [u32; 34] = [
    8, 9, 34, 35, 43, 49, 50, 52, 56, 57, 90, 91, 97, 115, 116, 122, 128, 129, 142, 143, 144, 145,
    212, 213, 347, 369, 370, 627, 628, 629, 630, 1128, 1129, 1156,
];

#[cfg(test)]
fn builtin_is_header(tag: u32) -> bool {
    BUILTIN_HEADER.contains(&tag)
}

/// The standard (length field, data field) pairs, used when no dictionary is given.
const BUILTIN_DATA_FIELDS: [(u32, u32); 18] = [
    (90, 91),
    (93, 89),
    (95, 96),
    (212, 213),
    (348, 349),
    (350, 351),
    (352, 353),
    (354, 355),
    (356, 357),
    (358, 359),
    (360, 361),
    (362, 363),
    (364, 365),
    (445, 446),
    (618, 619),
    (621, 622),
    (1401, 1402),
    (1403, 1404),
];

fn builtin_length_for_data(tag: u32) -> Option<u32> {
    BUILTIN_DATA_FIELDS
        .iter()
        .find(|(_, d)| *d == tag)
        .map(|(l, _)| *l)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Returns the eight bytes of `bytes` at `at` as a little-endian word.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.wrapping_add(8))
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map(u64::from_le_bytes)
}

/// Returns a word with the high bit set in the lowest byte of `word` that is zero;
/// higher bits may be set too (the borrow can mark a 0x01 byte above it), so only the
/// lowest one counts.
#[inline(always)]
fn first_zero_byte(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Returns the SOH marks of `word`: the lowest high bit set marks the first SOH.
#[inline(always)]
fn soh_marks(word: u64) -> u64 {
    first_zero_byte(word ^ ONES)
}

/// Parses the tag at the start of `rest` up to its `=`; returns the tag and the number
/// of digits. Tags of up to 7 digits are read eight bytes at a time. (The tokenizer
/// reads the word itself and calls [`tag_of_word`].)
#[cfg(test)]
fn parse_tag(rest: &[u8]) -> Option<(u32, usize)> {
    match word_at(rest, 0).map(tag_of_word) {
        Some(TagWord::Tag(tag, digits)) => Some((tag, digits)),
        Some(TagWord::Invalid) => None,
        Some(TagWord::Long) | None => parse_tag_slow(rest),
    }
}

/// What the first eight bytes of a field say about its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagWord {
    /// The tag and its number of digits (1 to 7), followed by `=`.
    Tag(u32, usize),
    /// Not a tag: empty, or a byte other than a digit before the `=`.
    Invalid,
    /// No `=` in the eight bytes: a longer tag, or not a tag ([`parse_tag_slow`]).
    Long,
}

/// Reads the tag of a field from the field's first eight bytes (little-endian).
#[inline(always)]
fn tag_of_word(word: u64) -> TagWord {
    // Each byte minus '0' (as xor: digits become 0..=9), then the high bit of every
    // byte that is not a digit: >= 0x80, or >= 10 once the high bit is cleared (no
    // carry crosses bytes: 0x7F + 0x76 < 0x100).
    let values = word ^ 0x3030_3030_3030_3030;
    let not_digits =
        (((values & 0x7F7F_7F7F_7F7F_7F7F).wrapping_add(0x7676_7676_7676_7676)) | values) & HIGHS;
    if not_digits == 0 {
        return TagWord::Long;
    }
    // The first byte that is not a digit must be the `=`, after at least one digit.
    let high_bit = not_digits.trailing_zeros();
    let digits = (high_bit / 8) as usize;
    if digits == 0 || (word >> (high_bit - 7)) as u8 != b'=' {
        return TagWord::Invalid;
    }
    // The digit values in the top bytes, zeros (leading zeros) below; then pairs,
    // quads and the whole: the classic eight-digit SWAR conversion.
    let v = values << (64 - 8 * digits as u32);
    if digits <= 4 {
        // The common case: the top four bytes hold it all; two steps in 32 bits.
        let v = (v >> 32) as u32;
        let v = (v.wrapping_mul(2561) >> 8) & 0x00FF_00FF;
        let v = v.wrapping_mul(6_553_601) >> 16;
        return TagWord::Tag(v, digits);
    }
    let v = (v.wrapping_mul(2561) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(6_553_601) >> 16) & 0x0000_FFFF_0000_FFFF;
    let v = v.wrapping_mul(42_949_672_960_001) >> 32;
    TagWord::Tag(v as u32, digits)
}

/// [`parse_tag`] one byte at a time: near the end of the buffer, and for tags of
/// 8 digits or more.
#[inline(never)]
fn parse_tag_slow(rest: &[u8]) -> Option<(u32, usize)> {
    let mut tag: u64 = 0;
    for (i, &c) in rest.iter().enumerate().take(11) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return if c == b'=' && i > 0 {
                u32::try_from(tag).ok().map(|t| (t, i))
            } else {
                None
            };
        }
        tag = tag * 10 + u64::from(d);
    }
    None
}

/// Returns the index of the first SOH in `bytes[from..to]`, eight bytes at a time.
#[inline(always)]
fn find_soh(bytes: &[u8], from: usize, to: usize) -> Option<usize> {
    let hay = bytes.get(from..to)?;
    let mut chunks = hay.chunks_exact(8);
    let mut base = from;
    for chunk in &mut chunks {
        let marks = soh_marks(<[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes));
        if marks != 0 {
            return Some(base + (marks.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == SOH)
        .map(|p| p + base)
}

/// Returns the SOH positions of a 64-byte block: bit `i` set when `block[i]` is SOH.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn soh_mask64(block: &[u8; 64]) -> u64 {
    use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i};
    let soh = set_splat_i8_m128i(SOH as i8);
    let mut bits = 0;
    for (k, lane) in block.chunks_exact(16).enumerate() {
        let bytes = <[u8; 16]>::try_from(lane).unwrap_or_default();
        let marks = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(m128i::from(bytes), soh));
        // 16 bits of marks per lane (the upper half of the i32 is clear).
        bits |= u64::from(marks as u16) << (16 * k);
    }
    bits
}

/// Returns the SOH positions of a 64-byte block: bit `i` set when `block[i]` is SOH.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn soh_mask64(block: &[u8; 64]) -> u64 {
    soh_mask64_in_words(block)
}

/// [`soh_mask64`] eight bytes at a time, without SIMD instructions (other targets).
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "sse2", not(test)),
    allow(dead_code)
)]
#[inline(always)]
fn soh_mask64_in_words(block: &[u8; 64]) -> u64 {
    let mut bits = 0;
    for (k, chunk) in block.chunks_exact(8).enumerate() {
        let word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes) ^ ONES;
        // The high bit of each byte that is zero (SOH before the xor), exactly: no
        // borrow crosses bytes.
        let zeros = !((((word & !HIGHS).wrapping_add(!HIGHS)) | word) & HIGHS);
        let zeros = zeros & HIGHS;
        // Gather the eight high bits into the top byte (byte i to bit 56 + i).
        let packed = ((zeros >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        bits |= packed << (8 * k);
    }
    bits
}

/// Returns the SOH positions in `buf[base..end]` as bits from `base` (bit `i` for
/// `base + i`, up to 64 bytes); bits at `end` and past it are clear.
#[inline(always)]
fn soh_bits(buf: &[u8], base: usize, end: usize) -> u64 {
    let bits = match buf.get(base..base.wrapping_add(64)) {
        Some(block) => soh_mask64(<&[u8; 64]>::try_from(block).unwrap_or(&[0; 64])),
        None => soh_bits_near_end(buf, base),
    };
    let avail = end.saturating_sub(base);
    if avail < 64 {
        bits & ((1u64 << avail) - 1)
    } else {
        bits
    }
}

/// [`soh_bits`] for a block that runs past the end of `buf`: the buffer's last 64
/// bytes, shifted, or the bytes copied into a block when there are fewer.
#[inline(never)]
fn soh_bits_near_end(buf: &[u8], base: usize) -> u64 {
    let len = buf.len();
    if base >= len {
        return 0;
    }
    match len
        .checked_sub(64)
        .and_then(|start| buf.get(start..).map(|b| (start, b)))
    {
        Some((start, last)) => {
            soh_mask64(<&[u8; 64]>::try_from(last).unwrap_or(&[0; 64])) >> (base - start)
        }
        None => {
            let mut block = [0u8; 64];
            let rest = buf.get(base..).unwrap_or_default();
            if let Some(head) = block.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            soh_mask64(&block)
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.get(..bytes.len().min(32)).unwrap_or_default()).into_owned()
}

/// Parses an unsigned decimal number of at most 18 digits.
#[inline]
fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// A parsed FIX message: the fields of one frame, borrowed from the caller's buffer.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    /// The whole message as text when it is UTF-8 (checked once), so that text
    /// getters slice it instead of checking each value.
    text: Option<&'a str>,
    st: MessageStorage,
    body_length: u32,
    checksum: u8,
    out_of_order: Option<u32>,
    group_order: Option<u32>,
    laid_out: bool,
}

impl<'a> Message<'a> {
    /// Parses one complete message without a dictionary (no repeating-group layout;
    /// standard header, trailer and data fields).
    ///
    /// # Errors
    /// A [`ParseError`] when the bytes are not a well-framed message: the session layer
    /// treats that as a garbled message.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_reusing(
            buf,
            &ParseOptions::default(),
            MessageStorage::with_capacity(32),
        )
    }

    /// Parses one complete message with `dictionary` (FIX 4.x): repeating groups are
    /// laid out and the dictionary's header, trailer and data fields are used.
    ///
    /// # Errors
    /// A [`ParseError`] when the bytes are not a well-framed message.
    pub fn parse_with(buf: &'a [u8], dictionary: &Dictionary) -> Result<Self, ParseError> {
        Self::parse_reusing(
            buf,
            &ParseOptions::with_dictionary(dictionary),
            MessageStorage::with_capacity(32),
        )
    }

    /// Parses one complete message with `options`.
    ///
    /// # Errors
    /// A [`ParseError`] when the bytes are not a well-framed message.
    pub fn parse_with_options(
        buf: &'a [u8],
        options: &ParseOptions<'_>,
    ) -> Result<Self, ParseError> {
        Self::parse_reusing(buf, options, MessageStorage::with_capacity(32))
    }

    /// Parses one complete message into recycled `storage` (see [`Message::into_storage`]).
    ///
    /// # Errors
    /// A [`ParseError`] when the bytes are not a well-framed message (the storage is
    /// dropped then).
    pub fn parse_reusing(
        buf: &'a [u8],
        options: &ParseOptions<'_>,
        mut storage: MessageStorage,
    ) -> Result<Self, ParseError> {
        storage.clear(options);
        let (body_length, checksum, out_of_order) = tokenize(buf, options, &mut storage)?;
        let mut msg = Self {
            buf,
            text: std::str::from_utf8(buf).ok(),
            st: storage,
            body_length,
            checksum,
            out_of_order,
            group_order: None,
            laid_out: false,
        };
        if options.session.is_some() || options.application.is_some() {
            msg.laid_out = true;
            if !msg.st.layout.group_counts.is_empty() {
                msg.lay_out_groups(options, true);
            }
        }
        Ok(msg)
    }

    /// Returns the storage for reuse by [`Message::parse_reusing`].
    #[must_use]
    pub fn into_storage(self) -> MessageStorage {
        self.st
    }

    /// Recomputes the repeating-group layout with other dictionaries (e.g. after a
    /// dictionary-less [`Message::parse`]).
    pub fn apply_dictionaries(&mut self, options: &ParseOptions<'_>) {
        for f in &mut self.st.fields {
            f.depth = 0;
        }
        self.st.layout.groups.clear();
        self.st.layout.entries.clear();
        self.st.layout.stack.clear();
        self.group_order = None;
        self.laid_out = false;
        if options.session.is_some() || options.application.is_some() {
            self.laid_out = true;
            self.lay_out_groups(options, false);
        }
    }

    /// Lays out the repeating groups: from the NumInGroup candidates the tokenizer
    /// noted (`from_candidates`), or from every field.
    fn lay_out_groups(&mut self, options: &ParseOptions<'_>, from_candidates: bool) {
        let msg_type = self.msg_type();
        let session_msg = options
            .session
            .and_then(|d| d.message(msg_type).map(|m| (d, m)));
        let body = session_msg.or_else(|| {
            options
                .application
                .and_then(|d| d.message(msg_type).map(|m| (d, m)))
        });
        let n = self.st.fields.len();
        let mut i = 2;
        let mut order_error = None;
        let mut next_candidate = 0;
        while i + 1 < n {
            if from_candidates {
                // Skip to the next candidate not inside a group laid out already.
                loop {
                    match self.st.layout.group_counts.get(next_candidate) {
                        Some(&c) if (c as usize) < i => next_candidate += 1,
                        Some(&c) => {
                            i = c as usize;
                            next_candidate += 1;
                            break;
                        }
                        None => {
                            i = n;
                            break;
                        }
                    }
                }
                if i + 1 >= n {
                    break;
                }
            }
            let Some(&f) = self.st.fields.get(i) else {
                break;
            };
            if f.depth == 0 && !f.negative {
                let found = match f.section {
                    Section::Header => options.session.and_then(|d| {
                        if d.is_group_count_field(f.tag) {
                            d.header().group_id(f.tag).map(|g| (d, g))
                        } else {
                            None
                        }
                    }),
                    Section::Body => body.and_then(|(d, m)| {
                        if d.is_group_count_field(f.tag) {
                            m.block.group_id(f.tag).map(|g| (d, g))
                        } else {
                            None
                        }
                    }),
                    Section::Trailer => options.session.and_then(|d| {
                        if d.is_group_count_field(f.tag) {
                            d.trailer().group_id(f.tag).map(|g| (d, g))
                        } else {
                            None
                        }
                    }),
                };
                if let Some((dict, gid)) = found {
                    i = parse_group(
                        &mut self.st,
                        dict,
                        gid,
                        i,
                        1,
                        NO_PARENT,
                        n - 1,
                        &mut order_error,
                    );
                    continue;
                }
            }
            i += 1;
        }
        self.group_order = order_error;
    }

    /// Returns the value of the first top-level occurrence of `tag` (outside groups).
    #[must_use]
    #[inline]
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.raw(tag)
    }

    /// Returns the whole message.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Returns the value of `field` (a [`FieldRef`] of this message).
    #[must_use]
    #[inline]
    pub fn value(&self, field: &FieldRef) -> &'a [u8] {
        self.buf.get(field.value_range()).unwrap_or_default()
    }

    /// Returns the value of `field` as text when it is UTF-8: a slice of the message's
    /// text when the whole message is UTF-8 (a value between ASCII delimiters starts
    /// and ends on character boundaries), else checked on its own.
    #[inline]
    fn text_of_field(&self, field: &FieldRef) -> Option<&'a str> {
        match self.text.and_then(|t| t.get(field.value_range())) {
            Some(text) => Some(text),
            None => text_of(self.value(field)),
        }
    }

    /// Returns the value of `field` as a [`Decimal`]: values of up to eight bytes
    /// are read as one word (every value but CheckSum's has eight bytes of the
    /// message from its start), longer ones by [`parse_decimal`].
    #[inline]
    fn decimal_of_field(&self, field: &FieldRef) -> Option<Decimal> {
        let range = field.value_range();
        let len = range.end.wrapping_sub(range.start);
        if (1..=8).contains(&len) {
            if let Some(word) = word_at(self.buf, range.start) {
                return decimal_of_word(word, len);
            }
        }
        parse_decimal(self.value(field))
    }

    /// Returns BeginString (8), e.g. `FIX.4.4`.
    #[must_use]
    pub fn begin_string(&self) -> &'a [u8] {
        self.st
            .fields
            .first()
            .map(|f| self.value(f))
            .unwrap_or_default()
    }

    /// Returns MsgType (35), e.g. `D`.
    #[must_use]
    #[inline]
    pub fn msg_type(&self) -> &'a [u8] {
        self.st
            .fields
            .get(2)
            .map(|f| self.value(f))
            .unwrap_or_default()
    }

    /// Returns BodyLength (9).
    #[must_use]
    pub fn body_length(&self) -> usize {
        self.body_length as usize
    }

    /// Returns CheckSum (10) as declared in the message.
    #[must_use]
    pub fn checksum(&self) -> u8 {
        self.checksum
    }

    /// Returns MsgSeqNum (34).
    ///
    /// # Errors
    /// [`FieldError`] when it is missing or not a number.
    pub fn msg_seq_num(&self) -> Result<u64, FieldError> {
        self.get_seq_num(tags::MSG_SEQ_NUM)
    }

    /// Returns every field, in wire order (8 and 9 first, 10 last).
    #[must_use]
    pub fn fields(&self) -> &[FieldRef] {
        &self.st.fields
    }

    /// Returns the number of fields, 8, 9 and 10 included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.st.fields.len()
    }

    /// Returns whether the message has no fields (never true for a parsed message).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.st.fields.is_empty()
    }

    /// Iterates over every field as `(tag, value)`, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [u8])> + '_ {
        self.st.fields.iter().map(move |f| (f.tag, self.value(f)))
    }

    /// Iterates over the fields of one section that are not inside a group.
    pub fn section(&self, section: Section) -> impl Iterator<Item = (u32, &'a [u8])> + '_ {
        self.st
            .fields
            .iter()
            .filter(move |f| f.section == section && f.depth == 0)
            .map(move |f| (f.tag, self.value(f)))
    }

    /// Returns the values of every top-level occurrence of `tag`.
    pub fn get_all(&self, tag: u32) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.st
            .fields
            .iter()
            .filter(move |f| f.is_top(tag))
            .map(move |f| self.value(f))
    }

    /// Returns the top-level repeating group counted by `count_tag`.
    #[must_use]
    pub fn group(&self, count_tag: u32) -> Option<Group<'_, 'a>> {
        self.st
            .layout
            .groups
            .iter()
            .find(|g| g.parent_start == NO_PARENT && g.count_tag == count_tag)
            .map(|rec| Group {
                msg: self,
                rec: *rec,
            })
    }

    /// Iterates over the top-level repeating groups, in wire order of their counts.
    pub fn groups(&self) -> impl Iterator<Item = Group<'_, 'a>> + '_ {
        let mut top: Vec<GroupRec> = self
            .st
            .layout
            .groups
            .iter()
            .filter(|g| g.parent_start == NO_PARENT)
            .copied()
            .collect();
        top.sort_by_key(|g| g.count_idx);
        top.into_iter().map(move |rec| Group { msg: self, rec })
    }

    /// Returns whether the message was parsed with a dictionary (groups laid out).
    #[must_use]
    pub fn has_group_layout(&self) -> bool {
        self.laid_out
    }

    /// Returns the first header field found after a body field, or body field found
    /// after a trailer field (SessionRejectReason 14 with this RefTagID).
    #[must_use]
    pub fn out_of_order_tag(&self) -> Option<u32> {
        self.out_of_order
    }

    /// Returns the first tag that started a group entry without being the group's
    /// delimiter (SessionRejectReason 15 with this RefTagID).
    #[must_use]
    pub fn group_order_error(&self) -> Option<u32> {
        self.group_order
    }

    pub(crate) fn group_records(&self) -> &[GroupRec] {
        &self.st.layout.groups
    }

    pub(crate) fn entry_records(&self) -> &[EntryRec] {
        &self.st.layout.entries
    }
}

impl<'a> FieldAccess<'a> for Message<'a> {
    #[inline]
    fn raw(&self, tag: u32) -> Option<&'a [u8]> {
        self.st.find_top(tag).map(|f| self.value(f))
    }

    #[inline]
    fn get_str(&self, tag: u32) -> Result<&'a str, FieldError> {
        let f = self.st.find_top(tag).ok_or(FieldError::Missing(tag))?;
        self.text_of_field(f).ok_or(FieldError::Format {
            tag,
            expected: "string",
        })
    }

    #[inline]
    fn get_decimal(&self, tag: u32) -> Result<Decimal, FieldError> {
        let f = self.st.find_top(tag).ok_or(FieldError::Missing(tag))?;
        self.decimal_of_field(f).ok_or(FieldError::Format {
            tag,
            expected: "decimal",
        })
    }
}

/// Splits the frame into fields; returns (BodyLength, CheckSum, out-of-order tag).
fn tokenize(
    buf: &[u8],
    options: &ParseOptions<'_>,
    st: &mut MessageStorage,
) -> Result<(u32, u8, Option<u32>), ParseError> {
    let len = buf.len();
    if len < 20 {
        return Err(FrameError::Truncated(len).into());
    }
    if u32::try_from(len).is_err() {
        return Err(ParseError::TooLarge(len));
    }
    if !buf.starts_with(b"8=") {
        let end = find_soh(buf, 0, len).unwrap_or(len);
        return Err(
            FrameError::MissingBeginString(lossy(buf.get(..end).unwrap_or_default())).into(),
        );
    }
    let soh1 = find_soh(buf, 2, len)
        .filter(|&p| p > 2)
        .ok_or_else(|| FrameError::MissingBeginString(lossy(buf)))?;
    let rest = buf.get(soh1 + 1..).unwrap_or_default();
    if !rest.starts_with(b"9=") {
        return Err(FrameError::MissingBodyLength(lossy(rest)).into());
    }
    let len_start = soh1 + 3;
    let soh2 = find_soh(buf, len_start, len).ok_or_else(|| {
        FrameError::InvalidBodyLength(lossy(buf.get(len_start..).unwrap_or_default()))
    })?;
    let length_text = buf.get(len_start..soh2).unwrap_or_default();
    let declared = parse_digits(length_text)
        .filter(|_| length_text.len() <= 9)
        .ok_or_else(|| FrameError::InvalidBodyLength(lossy(length_text)))?;
    let body_start = soh2 + 1;

    // The trailer is "10=NNN<SOH>" at the very end.
    let trailer_start = len - 7;
    let trailer = buf.get(trailer_start..).unwrap_or_default();
    let well_formed_trailer = trailer_start >= body_start
        && trailer.starts_with(b"10=")
        && trailer
            .get(3..6)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && trailer.get(6) == Some(&SOH)
        && buf.get(trailer_start - 1) == Some(&SOH);
    if !well_formed_trailer {
        return Err(FrameError::MissingChecksum.into());
    }
    let actual = trailer_start - body_start;
    if declared != actual as u64 {
        return Err(FrameError::BodyLengthMismatch {
            declared: usize::try_from(declared).unwrap_or(usize::MAX),
            actual,
        }
        .into());
    }
    let declared_sum = parse_digits(trailer.get(3..6).unwrap_or_default()).unwrap_or(0);
    let checksum_value = u8::try_from(declared_sum).unwrap_or(u8::MAX);
    if options.verify_checksum {
        let computed = checksum(buf.get(..trailer_start).unwrap_or_default());
        if declared_sum != u64::from(computed) {
            return Err(FrameError::ChecksumMismatch {
                declared: checksum_value,
                computed,
            }
            .into());
        }
    }

    // All offsets fit in u32 (checked above).
    let to32 = |v: usize| v as u32;
    st.push(FieldRef {
        tag: tags::BEGIN_STRING,
        start: 2,
        end: to32(soh1),
        section: Section::Header,
        depth: 0,
        negative: false,
    });
    st.push(FieldRef {
        tag: tags::BODY_LENGTH,
        start: to32(len_start),
        end: to32(soh2),
        section: Section::Header,
        depth: 0,
        negative: false,
    });

    let end = trailer_start;
    let MessageStorage {
        fields,
        lookup,
        tags,
        layout,
    } = &mut *st;
    let parts = Parts {
        fields,
        lookup,
        group_counts: &mut layout.group_counts,
    };
    // A storage's first message has no tag cache: its flags come straight from
    // the dictionaries, through the lookup that fits them.
    macro_rules! without_cache {
        ($flags_of:expr) => {
            tokenize_body(
                buf,
                body_start,
                end,
                options,
                parts,
                &mut NoTagCache,
                $flags_of,
            )?
        };
    }
    let out_of_order = match (
        tags.slots.as_deref_mut(),
        options.session,
        options.application,
    ) {
        // With the cache, flags are looked up only for tags seen the first time.
        (Some(cache), _, _) => tokenize_body(buf, body_start, end, options, parts, cache, |tag| {
            options.tag_flags(tag)
        })?,
        (None, None, None) => without_cache!(builtin_flags),
        (None, Some(s), Some(a)) if std::ptr::eq(s, a) => {
            without_cache!(|tag| s.parse_flags(tag))
        }
        (None, Some(s), None) => without_cache!(|tag| s.parse_flags(tag)),
        (None, _, _) => without_cache!(|tag| options.tag_flags(tag)),
    };
    st.push(FieldRef {
        tag: tags::CHECKSUM,
        start: to32(trailer_start + 3),
        end: to32(len - 1),
        section: Section::Trailer,
        depth: 0,
        negative: false,
    });
    match st.fields.get(2) {
        Some(f) if f.tag == tags::MSG_TYPE && !f.negative && f.end > f.start => {}
        _ => return Err(FrameError::MissingMsgType.into()),
    }
    Ok((to32(actual), checksum_value, out_of_order))
}

/// The section of a field by its header and trailer flags (`flags >> 1 & 3`): header
/// when a header field (even if a trailer field too), else trailer or body.
const SECTION_OF_FLAGS: [Section; 4] = [
    Section::Body,
    Section::Header,
    Section::Trailer,
    Section::Header,
];
const _: () = assert!(FLAG_HEADER == 2 && FLAG_TRAILER == 4);

/// The parts of a [`MessageStorage`] the tokenizer writes (the tag cache apart).
struct Parts<'s> {
    fields: &'s mut Vec<FieldRef>,
    lookup: &'s mut TagIndex,
    group_counts: &'s mut Vec<u32>,
}

/// Splits the body (`buf[body_start..end]`, ending with SOH and followed by the
/// trailer) into fields with the header/trailer/data/NumInGroup flags of `flags_of`;
/// returns the out-of-order tag.
#[inline(never)]
fn tokenize_body(
    buf: &[u8],
    body_start: usize,
    end: usize,
    options: &ParseOptions<'_>,
    parts: Parts<'_>,
    tag_cache: &mut impl TagLookup,
    flags_of: impl Fn(u32) -> u8,
) -> Result<Option<u32>, ParseError> {
    // All offsets fit in u32 (checked by the caller).
    let to32 = |v: usize| v as u32;
    // The parts of the storage apart, so that the index's generation and slots stay
    // in registers while fields are written.
    let Parts {
        fields,
        lookup,
        group_counts,
    } = parts;
    let generation = lookup.generation;
    let slots = &mut *lookup.slots;
    let mut pos = body_start;
    let mut highest = Section::Header as u8;
    let mut out_of_order = None;
    // The SOHs of the body not yet taken, 64 bytes at a time from `block`: bit `i`
    // marks `block + i`. The tag and `=` of a field hold no SOH, so the next one
    // marked ends the field's value (data fields excepted: they start over after
    // their value).
    let mut block = body_start;
    let mut sohs = soh_bits(buf, block, end);
    while pos < end {
        let field_start = pos;
        let invalid = || ParseError::InvalidTag {
            offset: field_start,
        };
        // Eight bytes from any position before `end` lie in `buf`: the body ends with
        // SOH at `end - 1` and the seven trailer bytes follow. A field has a digit or
        // `-` first, so its first byte is before that SOH.
        let word = word_at(buf, pos).ok_or_else(invalid)?;
        if word & 0xFF == u64::from(b'-') {
            // A negative tag: no header, trailer, data or NumInGroup field, so a body
            // field (validation rejects it).
            let (tag, value_start) = negative_field(buf, pos)?;
            let value_end = next_soh(buf, &mut block, &mut sohs, end).ok_or_else(invalid)?;
            if value_end < value_start {
                return Err(invalid());
            }
            if highest > Section::Body as u8 {
                note_out_of_order(&mut out_of_order, tag);
            }
            highest = highest.max(Section::Body as u8);
            push_field(
                fields,
                slots,
                generation,
                FieldRef {
                    tag,
                    start: to32(value_start),
                    end: to32(value_end),
                    section: Section::Body,
                    depth: 0,
                    negative: true,
                },
            );
            pos = value_end + 1;
            continue;
        }
        let (tag, digits, flags) = match tag_cache.find(word) {
            Some(known) => (known.tag, usize::from(known.digits), known.flags),
            None => match tag_of_word(word) {
                TagWord::Tag(tag, digits) => {
                    let flags = flags_of(tag);
                    // The digits and the `=`: 2 to 8 bytes.
                    let mask = u64::MAX >> (56 - 8 * digits as u32);
                    tag_cache.remember(
                        word,
                        TagSlot {
                            key: word & mask,
                            mask,
                            tag,
                            digits: digits as u8,
                            flags,
                        },
                    );
                    (tag, digits, flags)
                }
                TagWord::Invalid => return Err(invalid()),
                TagWord::Long => {
                    let (tag, digits) =
                        parse_tag_slow(buf.get(pos..).unwrap_or_default()).ok_or_else(invalid)?;
                    (tag, digits, flags_of(tag))
                }
            },
        };
        let value_start = pos + digits + 1;
        let value_end = if flags & FLAG_DATA != 0 {
            let value_end =
                data_value_end(buf, options, fields, tag, field_start, value_start, end)?;
            // The value may hold SOHs: mark the ones after it.
            block = value_end + 1;
            sohs = soh_bits(buf, block, end);
            value_end
        } else {
            // The digits and `=` hold no SOH, so the next one ends the value.
            next_soh(buf, &mut block, &mut sohs, end).ok_or_else(invalid)?
        };
        // Header fields belong before the body, body fields before the trailer: the
        // first field of a section ranked below the highest seen so far is out of order
        // (after that first one, the order no longer matters).
        let section = if flags & (FLAG_HEADER | FLAG_TRAILER) == 0 {
            if highest > Section::Body as u8 {
                note_out_of_order(&mut out_of_order, tag);
            }
            highest = highest.max(Section::Body as u8);
            Section::Body
        } else {
            let section = SECTION_OF_FLAGS[usize::from((flags >> 1) & 3)];
            let rank = section as u8;
            if rank < highest {
                note_out_of_order(&mut out_of_order, tag);
            }
            highest = highest.max(rank);
            section
        };
        if flags & FLAG_GROUP_COUNT != 0 {
            group_counts.push(to32(fields.len()));
        }
        push_field(
            fields,
            slots,
            generation,
            FieldRef {
                tag,
                start: to32(value_start),
                end: to32(value_end),
                section,
                depth: 0,
                negative: false,
            },
        );
        pos = value_end + 1;
    }
    Ok(out_of_order)
}

/// Takes the next SOH marked in `sohs` (bits from `block`), marking the next 64 bytes
/// while there is none; `None` when none is left before `end`.
#[inline(always)]
fn next_soh(buf: &[u8], block: &mut usize, sohs: &mut u64, end: usize) -> Option<usize> {
    while *sohs == 0 {
        *block += 64;
        if *block >= end {
            return None;
        }
        *sohs = soh_bits(buf, *block, end);
    }
    let at = *block + sohs.trailing_zeros() as usize;
    *sohs &= *sohs - 1;
    Some(at)
}

/// Appends `field`, noting it in the tag index (as [`TagIndex::note`], with the
/// generation in a register) when it is the first of its slot.
#[inline(always)]
fn push_field(
    fields: &mut Vec<FieldRef>,
    slots: &mut [u32; LOOKUP_SLOTS],
    generation: u32,
    field: FieldRef,
) {
    let index = fields.len();
    let slot = &mut slots[field.tag as usize % LOOKUP_SLOTS];
    if *slot >> 16 != generation && index < usize::from(u16::MAX) {
        *slot = generation << 16 | (index as u32 + 1);
    }
    fields.push(field);
}

/// Reads the field at `pos` whose tag starts with `-`: returns its tag (the
/// magnitude) and where its value starts.
#[cold]
#[inline(never)]
fn negative_field(buf: &[u8], pos: usize) -> Result<(u32, usize), ParseError> {
    let rest = buf.get(pos + 1..).unwrap_or_default();
    let (tag, digits) = parse_tag_slow(rest).ok_or(ParseError::InvalidTag { offset: pos })?;
    Ok((tag, pos + 1 + digits + 1))
}

/// Remembers `tag` as the out-of-order field unless one came before.
#[cold]
#[inline(never)]
fn note_out_of_order(out_of_order: &mut Option<u32>, tag: u32) {
    if out_of_order.is_none() {
        *out_of_order = Some(tag);
    }
}

/// Returns where the value of `tag`, flagged as a data field, ends: from the value of
/// its length field when the dictionary names one, else at the next SOH.
#[cold]
#[inline(never)]
fn data_value_end(
    buf: &[u8],
    options: &ParseOptions<'_>,
    fields: &[FieldRef],
    tag: u32,
    field_start: usize,
    value_start: usize,
    end: usize,
) -> Result<usize, ParseError> {
    match options.length_tag_for_data(tag) {
        Some(length_tag) => data_end(buf, fields, tag, length_tag, value_start, end),
        None => find_soh(buf, value_start, end).ok_or(ParseError::InvalidTag {
            offset: field_start,
        }),
    }
}

/// Returns where data field `tag` ends, from the value of its length field.
#[cold]
fn data_end(
    buf: &[u8],
    fields: &[FieldRef],
    tag: u32,
    length_tag: u32,
    value_start: usize,
    end: usize,
) -> Result<usize, ParseError> {
    let declared = fields
        .iter()
        .rev()
        .find(|f| f.tag == length_tag && !f.negative)
        .and_then(|f| parse_digits(buf.get(f.value_range()).unwrap_or_default()))
        .ok_or(ParseError::MissingDataLength { tag, length_tag })?;
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    let stop = value_start.saturating_add(declared);
    if stop >= end || buf.get(stop) != Some(&SOH) {
        return Err(ParseError::DataLengthMismatch { tag, declared });
    }
    Ok(stop)
}

/// Lays out the group whose NumInGroup field is `fields[count_idx]`; returns the index
/// of the first field after the group.
#[allow(clippy::too_many_arguments)]
fn parse_group(
    st: &mut MessageStorage,
    dict: &Dictionary,
    gid: GroupId,
    count_idx: usize,
    depth: u8,
    parent_start: u32,
    limit: usize,
    order_error: &mut Option<u32>,
) -> usize {
    let Some(def) = dict.group(gid) else {
        return count_idx + 1;
    };
    let Some(&count) = st.fields.get(count_idx) else {
        return count_idx + 1;
    };
    let base = st.layout.stack.len();
    let mut i = count_idx + 1;
    // The first field of the open entry; entries go on the stack as they close
    // (nested groups leave the stack as they found it).
    let mut current: Option<u32> = None;
    while i < limit {
        let Some(&f) = st.fields.get(i) else {
            break;
        };
        if f.negative || f.section != count.section || !def.block.contains(f.tag) {
            break;
        }
        let new_entry = match current {
            None => true,
            Some(start) => {
                f.tag == def.delimiter
                    || st
                        .fields
                        .get(start as usize..i)
                        .unwrap_or_default()
                        .iter()
                        .any(|g| g.depth == depth && g.tag == f.tag)
            }
        };
        if new_entry {
            if f.tag != def.delimiter && order_error.is_none() {
                *order_error = Some(f.tag);
            }
            if let Some(start) = current {
                st.layout.stack.push((start, i as u32));
            }
            current = Some(i as u32);
        }
        if let Some(field) = st.fields.get_mut(i) {
            field.depth = depth;
        }
        let nested = if dict.is_group_count_field(f.tag) {
            def.block.group_id(f.tag)
        } else {
            None
        };
        i = match nested {
            Some(nested) if depth < u8::MAX => parse_group(
                st,
                dict,
                nested,
                i,
                depth + 1,
                current.unwrap_or(i as u32),
                limit,
                order_error,
            ),
            _ => i + 1,
        };
    }
    if let Some(start) = current {
        st.layout.stack.push((start, i as u32));
    }
    let first_entry = st.layout.entries.len() as u32;
    let n_entries = (st.layout.stack.len() - base) as u32;
    for &(start, end) in st.layout.stack.get(base..).unwrap_or_default() {
        st.layout.entries.push(EntryRec { start, end });
    }
    st.layout.stack.truncate(base);
    st.layout.groups.push(GroupRec {
        count_tag: count.tag,
        count_idx: count_idx as u32,
        parent_start,
        first_entry,
        n_entries,
        def: gid,
        depth,
    });
    i
}

/// A repeating group of a parsed message.
#[derive(Debug, Clone, Copy)]
pub struct Group<'m, 'a> {
    msg: &'m Message<'a>,
    rec: GroupRec,
}

impl<'m, 'a> Group<'m, 'a> {
    /// Returns the NumInGroup tag.
    #[must_use]
    pub fn count_tag(&self) -> u32 {
        self.rec.count_tag
    }

    /// Returns the NumInGroup value as written (`None` when it is not a number).
    #[must_use]
    pub fn declared_count(&self) -> Option<u64> {
        self.msg
            .st
            .fields
            .get(self.rec.count_idx as usize)
            .and_then(|f| parse_digits(self.msg.value(f)))
    }

    /// Returns the number of entries found.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rec.n_entries as usize
    }

    /// Returns whether no entry was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rec.n_entries == 0
    }

    /// Returns entry `index`.
    #[must_use]
    pub fn entry(&self, index: usize) -> Option<Entry<'m, 'a>> {
        if index >= self.len() {
            return None;
        }
        let e = self
            .msg
            .st
            .layout
            .entries
            .get(self.rec.first_entry as usize + index)?;
        Some(Entry {
            msg: self.msg,
            start: e.start,
            end: e.end,
            depth: self.rec.depth,
        })
    }

    /// Iterates over the entries.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'m, 'a>> + '_ {
        (0..self.len()).filter_map(move |i| self.entry(i))
    }
}

/// One entry of a repeating group.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'m, 'a> {
    msg: &'m Message<'a>,
    start: u32,
    end: u32,
    depth: u8,
}

impl<'m, 'a> Entry<'m, 'a> {
    fn own_fields(&self) -> impl Iterator<Item = &'m FieldRef> + 'm {
        let depth = self.depth;
        self.msg
            .st
            .fields
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
            .iter()
            .filter(move |f| f.depth == depth)
    }

    /// Iterates over the entry's own fields as `(tag, value)` (nested group members
    /// excluded), in wire order.
    pub fn fields(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'm {
        let msg = self.msg;
        self.own_fields().map(move |f| (f.tag, msg.value(f)))
    }

    /// Returns the nested repeating group counted by `count_tag`.
    #[must_use]
    pub fn group(&self, count_tag: u32) -> Option<Group<'m, 'a>> {
        self.msg
            .st
            .layout
            .groups
            .iter()
            .find(|g| g.parent_start == self.start && g.count_tag == count_tag)
            .map(|rec| Group {
                msg: self.msg,
                rec: *rec,
            })
    }
}

impl<'a> FieldAccess<'a> for Entry<'_, 'a> {
    fn raw(&self, tag: u32) -> Option<&'a [u8]> {
        self.own_fields()
            .find(|f| f.tag == tag)
            .map(|f| self.msg.value(f))
    }

    fn get_str(&self, tag: u32) -> Result<&'a str, FieldError> {
        let f = self
            .own_fields()
            .find(|f| f.tag == tag)
            .ok_or(FieldError::Missing(tag))?;
        self.msg.text_of_field(f).ok_or(FieldError::Format {
            tag,
            expected: "string",
        })
    }

    fn get_decimal(&self, tag: u32) -> Result<Decimal, FieldError> {
        let f = self
            .own_fields()
            .find(|f| f.tag == tag)
            .ok_or(FieldError::Missing(tag))?;
        self.msg.decimal_of_field(f).ok_or(FieldError::Format {
            tag,
            expected: "decimal",
        })
    }
}

/// Typed access to the fields of a message or group entry.
pub trait FieldAccess<'a> {
    /// Returns the raw value of the first occurrence of `tag` at this level.
    fn raw(&self, tag: u32) -> Option<&'a [u8]>;

    /// Returns whether `tag` is present at this level.
    fn has(&self, tag: u32) -> bool {
        self.raw(tag).is_some()
    }

    /// Returns the raw value of `tag`.
    ///
    /// # Errors
    /// [`FieldError::Missing`] when absent.
    fn get_bytes(&self, tag: u32) -> Result<&'a [u8], FieldError> {
        self.raw(tag).ok_or(FieldError::Missing(tag))
    }

    /// Returns the value of `tag` as UTF-8 text.
    ///
    /// # Errors
    /// [`FieldError`] when absent or not UTF-8.
    fn get_str(&self, tag: u32) -> Result<&'a str, FieldError> {
        text_of(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "string",
        })
    }

    /// Returns the value of `tag` as a signed integer (`-` allowed, `+` not).
    ///
    /// # Errors
    /// [`FieldError`] when absent or not an integer.
    fn get_int(&self, tag: u32) -> Result<i64, FieldError> {
        parse_int(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "int",
        })
    }

    /// Returns the value of `tag` as an unsigned integer.
    ///
    /// # Errors
    /// [`FieldError`] when absent or not an unsigned integer.
    fn get_u64(&self, tag: u32) -> Result<u64, FieldError> {
        parse_u64(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "unsigned int",
        })
    }

    /// Returns the value of `tag` as a sequence number.
    ///
    /// # Errors
    /// [`FieldError`] when absent or not an unsigned integer.
    fn get_seq_num(&self, tag: u32) -> Result<u64, FieldError> {
        parse_u64(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "sequence number",
        })
    }

    /// Returns the value of `tag` as a fixed-point decimal (price, quantity, amount).
    ///
    /// # Errors
    /// [`FieldError`] when absent, not a decimal, or beyond 18 significant digits.
    fn get_decimal(&self, tag: u32) -> Result<Decimal, FieldError> {
        parse_decimal(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "decimal",
        })
    }

    /// Returns the value of `tag` as a single character (byte).
    ///
    /// # Errors
    /// [`FieldError`] when absent or not exactly one byte.
    fn get_char(&self, tag: u32) -> Result<u8, FieldError> {
        match self.get_bytes(tag)? {
            [c] => Ok(*c),
            _ => Err(FieldError::Format {
                tag,
                expected: "char",
            }),
        }
    }

    /// Returns the value of `tag` as a boolean (`Y` or `N`).
    ///
    /// # Errors
    /// [`FieldError`] when absent or neither `Y` nor `N`.
    fn get_bool(&self, tag: u32) -> Result<bool, FieldError> {
        parse_bool(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "boolean",
        })
    }

    /// Returns the value of `tag`, a UTCTimestamp, as nanoseconds since the Unix epoch.
    ///
    /// # Errors
    /// [`FieldError`] when absent or not `YYYYMMDD-HH:MM:SS[.f{1,9}]`.
    fn get_timestamp(&self, tag: u32) -> Result<i64, FieldError> {
        parse_utc_timestamp(self.get_bytes(tag)?).ok_or(FieldError::Format {
            tag,
            expected: "UTCTimestamp",
        })
    }
}

/// Returns `bytes` as text when it is UTF-8. (A [`Message`] and its group entries
/// slice values out of the message's text, checked once, instead.)
#[inline(always)]
fn text_of(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

// ---------------------------------------------------------------------------
// Value syntax.

/// A fixed-point decimal: `mantissa * 10^-scale` (e.g. `-0.50` is `{-50, 2}`).
///
/// Equality compares the representation: `1.0` and `1.00` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i64,
    /// The number of digits after the decimal point.
    pub scale: u8,
}

impl Decimal {
    /// Returns `mantissa * 10^-scale`.
    #[must_use]
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Self { mantissa, scale }
    }

    /// Returns the nearest `f64`.
    #[must_use]
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(i32::from(self.scale))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        write_decimal(&mut out, *self);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Parses a FIX int: an optional `-` then digits (no `+`, no spaces).
#[must_use]
pub fn parse_int(v: &[u8]) -> Option<i64> {
    let (negative, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(i64::from(d))?
        } else {
            n.checked_add(i64::from(d))?
        };
    }
    Some(n)
}

/// Parses an unsigned FIX int (digits only).
#[must_use]
#[inline]
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    if v.len() <= 19 {
        // 19 digits cannot overflow: no checked arithmetic per digit.
        let mut n: u64 = 0;
        for &b in v {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + u64::from(d);
        }
        return Some(n);
    }
    parse_u64_checked(v)
}

/// [`parse_u64`] with overflow checks: for 20 digits or more.
fn parse_u64_checked(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Returns whether `v` is a FIX float (Price, Qty, Amt...): an optional `-`, digits,
/// an optional `.` and digits, with at least one digit (QuickFIX's rule: no `+`, no
/// exponent, no spaces).
#[must_use]
pub fn is_float(v: &[u8]) -> bool {
    let digits = match v.split_first() {
        Some((b'-', rest)) => rest,
        _ => v,
    };
    let mut seen_digit = false;
    let mut seen_point = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => seen_digit = true,
            b'.' if !seen_point => seen_point = true,
            _ => return false,
        }
    }
    seen_digit
}

/// Parses a FIX float into a [`Decimal`] (at most 18 significant digits).
#[must_use]
#[inline]
pub fn parse_decimal(v: &[u8]) -> Option<Decimal> {
    let (negative, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.len() > 18 {
        return parse_decimal_checked(negative, digits);
    }
    // At most 18 digits: no overflow, and a scale of at most 17.
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d <= 9 {
            mantissa = mantissa * 10 + u64::from(d);
        } else if b == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    let scale = match point {
        Some(i) => digits.len() - 1 - i,
        None => 0,
    };
    if digits.len() == usize::from(point.is_some()) {
        return None;
    }
    let mantissa = mantissa as i64;
    Some(Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        scale: scale as u8,
    })
}

/// Returns a word with the high bit set in each of the low `n` bytes (`n` <= 8).
#[inline(always)]
fn low_bytes_highs(n: usize) -> u64 {
    HIGHS.checked_shr(64 - 8 * n as u32).unwrap_or(0)
}

/// Returns a word with the high bit set in every byte of `word` that is zero (exactly:
/// no borrow marks a byte above it, unlike [`first_zero_byte`]).
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    !((((word & 0x7F7F_7F7F_7F7F_7F7F).wrapping_add(0x7F7F_7F7F_7F7F_7F7F)) | word) | !HIGHS)
}

/// Converts the `n` (1 to 8) digit values (0..=9) in the low bytes of `values`, the
/// first digit lowest, to their number: the classic eight-digit SWAR conversion.
#[inline(always)]
fn number_of_digit_values(values: u64, n: usize) -> u64 {
    let v = values << (64 - 8 * n as u32);
    let v = (v.wrapping_mul(2561) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(6_553_601) >> 16) & 0x0000_FFFF_0000_FFFF;
    v.wrapping_mul(42_949_672_960_001) >> 32
}

/// [`parse_decimal`] of a value of `len` (1 to 8) bytes held in the low bytes of `word`
/// (little-endian; the bytes above `len` are ignored), without a branch per byte.
#[inline(always)]
fn decimal_of_word(word: u64, len: usize) -> Option<Decimal> {
    let mut n = len;
    let mut w = word & !(u64::MAX.checked_shl(8 * n as u32).unwrap_or(0));
    let negative = w as u8 == b'-';
    if negative {
        w >>= 8;
        n -= 1;
    }
    // A point: take it out, the digits above it move down a byte.
    let points = zero_bytes(w ^ 0x2E2E_2E2E_2E2E_2E2E) & low_bytes_highs(n);
    let mut scale = 0;
    if points != 0 {
        if points & (points - 1) != 0 {
            return None;
        }
        let at = points.trailing_zeros() & !7;
        let below = (1u64 << at) - 1;
        w = (w & below) | ((w >> 8) & !below);
        n -= 1;
        scale = n - (at / 8) as usize;
    }
    if n == 0 {
        return None;
    }
    let values = w ^ 0x3030_3030_3030_3030;
    let not_digits = (((values & 0x7F7F_7F7F_7F7F_7F7F).wrapping_add(0x7676_7676_7676_7676))
        | values)
        & low_bytes_highs(n);
    if not_digits != 0 {
        return None;
    }
    let mantissa = number_of_digit_values(values, n) as i64;
    Some(Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        scale: scale as u8,
    })
}

/// [`parse_decimal`] with overflow checks: for more than 18 characters after the sign.
fn parse_decimal_checked(negative: bool, digits: &[u8]) -> Option<Decimal> {
    let mut mantissa: i64 = 0;
    let mut scale: u8 = 0;
    let mut seen_digit = false;
    let mut seen_point = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i64::from(b - b'0');
                mantissa = mantissa.checked_mul(10)?;
                mantissa = if negative {
                    mantissa.checked_sub(d)?
                } else {
                    mantissa.checked_add(d)?
                };
                if seen_point {
                    scale = scale.checked_add(1)?;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !seen_digit || scale > 18 {
        return None;
    }
    Some(Decimal { mantissa, scale })
}

/// Parses a FIX boolean: `Y` or `N`.
#[must_use]
pub fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"Y" => Some(true),
        b"N" => Some(false),
        _ => None,
    }
}

fn digits2(v: &[u8], at: usize) -> Option<u32> {
    match v.get(at..at + 2)? {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The year, month and day of a valid `YYYYMMDD`.
#[inline]
fn utc_date_parts(v: &[u8]) -> Option<(i64, u32, u32)> {
    if v.len() != 8 {
        return None;
    }
    let year = i64::from(digits2(v, 0)? * 100 + digits2(v, 2)?);
    let month = digits2(v, 4)?;
    let day = digits2(v, 6)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

/// Parses `YYYYMMDD` into days since 1970-01-01 (a UTCDateOnly).
#[must_use]
pub fn parse_utc_date(v: &[u8]) -> Option<i64> {
    let (year, month, day) = utc_date_parts(v)?;
    Some(days_from_civil(year, month, day))
}

/// Returns whether `v` is a valid `YYYYMMDD` (a UTCDateOnly), any year 0000-9999.
#[must_use]
pub fn is_utc_date(v: &[u8]) -> bool {
    utc_date_parts(v).is_some()
}

/// Returns whether `v` is a valid `HH:MM:SS[.f{1,9}]` (a UTCTimeOnly).
#[must_use]
pub fn is_utc_time_only(v: &[u8]) -> bool {
    parse_utc_time_only(v).is_some()
}

/// Returns whether `v` is a valid `YYYYMMDD-HH:MM:SS[.f{1,9}]` (a UTCTimestamp), any
/// year 0000-9999 (as QuickFIX accepts), without computing the instant it names: those
/// after 2262 do not fit [`parse_utc_timestamp`]'s nanoseconds.
#[must_use]
pub fn is_utc_timestamp(v: &[u8]) -> bool {
    split_utc_timestamp(v).is_some_and(|(date, time)| is_utc_date(date) && is_utc_time_only(time))
}

/// Parses `HH:MM:SS[.f{1,9}]` into nanoseconds since midnight (a UTCTimeOnly);
/// second 60 (leap second) is accepted.
#[must_use]
#[inline]
pub fn parse_utc_time_only(v: &[u8]) -> Option<i64> {
    if v.len() < 8 || v.get(2) != Some(&b':') || v.get(5) != Some(&b':') {
        return None;
    }
    let hour = digits2(v, 0)?;
    let minute = digits2(v, 3)?;
    let second = digits2(v, 6)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut nanos: i64 = 0;
    match v.get(8..) {
        Some([]) | None => {}
        Some([b'.', fraction @ ..]) if !fraction.is_empty() && fraction.len() <= 9 => {
            for &b in fraction {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                nanos = nanos * 10 + i64::from(d);
            }
            for _ in fraction.len()..9 {
                nanos *= 10;
            }
        }
        _ => return None,
    }
    Some(
        (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1_000_000_000
            + nanos,
    )
}

/// Parses a UTCTimestamp `YYYYMMDD-HH:MM:SS[.f{1,9}]` into nanoseconds since the Unix
/// epoch.
#[must_use]
pub fn parse_utc_timestamp(v: &[u8]) -> Option<i64> {
    let (date, time) = split_utc_timestamp(v)?;
    let days = parse_utc_date(date)?;
    let time = parse_utc_time_only(time)?;
    days.checked_mul(86_400_000_000_000)?.checked_add(time)
}

/// The date and time parts of `YYYYMMDD-<time>`, unchecked.
fn split_utc_timestamp(v: &[u8]) -> Option<(&[u8], &[u8])> {
    if v.len() < 17 || v.get(8) != Some(&b'-') {
        return None;
    }
    Some((v.get(..8)?, v.get(9..)?))
}

/// How many fractional digits to write in a UTCTimestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampPrecision {
    /// `YYYYMMDD-HH:MM:SS`.
    Seconds,
    /// `YYYYMMDD-HH:MM:SS.sss`.
    #[default]
    Millis,
    /// `YYYYMMDD-HH:MM:SS.ssssss`.
    Micros,
    /// `YYYYMMDD-HH:MM:SS.sssssssss`.
    Nanos,
}

/// Appends the UTCTimestamp of `nanos` since the Unix epoch to `out` (built
/// on the stack, then one copy: it is in the header of every message sent).
pub fn write_utc_timestamp(out: &mut Vec<u8>, nanos: i64, precision: TimestampPrecision) {
    let days = nanos.div_euclid(86_400_000_000_000);
    let in_day = nanos.rem_euclid(86_400_000_000_000);
    let (year, month, day) = civil_from_days(days);
    let year = year.clamp(0, 9999) as u32;
    let secs = (in_day / 1_000_000_000) as u32;
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let digit = |v: u32| b'0' + (v % 10) as u8;
    let mut text = [
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        digit(month / 10),
        digit(month),
        digit(day / 10),
        digit(day),
        b'-',
        digit(hour / 10),
        digit(hour),
        b':',
        digit(minute / 10),
        digit(minute),
        b':',
        digit(second / 10),
        digit(second),
        b'.',
        b'0',
        b'0',
        b'0',
        b'0',
        b'0',
        b'0',
        b'0',
        b'0',
        b'0',
    ];
    let frac = (in_day % 1_000_000_000) as u32;
    let (digits, mut value) = match precision {
        TimestampPrecision::Seconds => (0, 0),
        TimestampPrecision::Millis => (3, frac / 1_000_000),
        TimestampPrecision::Micros => (6, frac / 1_000),
        TimestampPrecision::Nanos => (9, frac),
    };
    let len = if digits == 0 { 17 } else { 18 + digits };
    if let Some(fraction) = text.get_mut(18..len) {
        for slot in fraction.iter_mut().rev() {
            *slot = digit(value);
            value /= 10;
        }
    }
    out.extend_from_slice(text.get(..len).unwrap_or_default());
}

/// Appends the decimal digits of `v` to `out`.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    if v < 1000 {
        out.extend_from_slice(&[
            b'0' + (v / 100) as u8,
            b'0' + (v / 10 % 10) as u8,
            b'0' + (v % 10) as u8,
        ]);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends the decimal digits of `v` (with `-` when negative) to `out`.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Appends a [`Decimal`] to `out`, e.g. `-0.50`.
pub fn write_decimal(out: &mut Vec<u8>, d: Decimal) {
    if d.scale == 0 {
        write_i64(out, d.mantissa);
        return;
    }
    if d.mantissa < 0 {
        out.push(b'-');
    }
    let mut digits = Vec::with_capacity(24);
    write_u64(&mut digits, d.mantissa.unsigned_abs());
    let scale = usize::from(d.scale);
    if digits.len() <= scale {
        out.push(b'0');
        out.push(b'.');
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

// ---------------------------------------------------------------------------
// Encoding.

/// Builds and encodes FIX messages, reusing its buffers.
///
/// The header is written in the standard order 8, 9, 35, 49, 56, 34, 52, then other
/// header fields in the order they were added; then the body fields, the trailer
/// fields (93/89) and CheckSum. BodyLength and CheckSum are computed.
///
/// Values are written as given: only [`MessageBuilder::field_data`] values may contain
/// SOH (they are preceded by their length field).
#[derive(Debug, Clone, Default)]
pub struct MessageBuilder {
    begin_string: Vec<u8>,
    msg_type: Vec<u8>,
    sender: Vec<u8>,
    target: Vec<u8>,
    seq_num: Vec<u8>,
    sending_time: Vec<u8>,
    header: Vec<u8>,
    body: Vec<u8>,
    trailer: Vec<u8>,
}

fn encode_field(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    write_u64(out, u64::from(tag));
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(SOH);
}

impl MessageBuilder {
    /// Returns a builder for a message with BeginString `begin_string` and MsgType
    /// `msg_type`.
    #[must_use]
    pub fn new(begin_string: &str, msg_type: &str) -> Self {
        Self {
            begin_string: begin_string.as_bytes().to_vec(),
            msg_type: msg_type.as_bytes().to_vec(),
            ..Self::default()
        }
    }

    /// Returns a builder holding the fields of `msg`: header fields by section
    /// (49, 56, 34, 52 in their standard slots), body and trailer fields in wire order.
    /// Encoding it reproduces `msg` byte for byte when `msg` has its header in the
    /// standard order.
    #[must_use]
    pub fn from_message(msg: &Message<'_>) -> Self {
        let mut b = Self {
            begin_string: msg.begin_string().to_vec(),
            msg_type: msg.msg_type().to_vec(),
            ..Self::default()
        };
        for (i, f) in msg.fields().iter().enumerate() {
            if i < 3 || i + 1 == msg.len() {
                continue;
            }
            let value = msg.value(f);
            let slot = match (f.section, f.negative, f.depth, f.tag) {
                (Section::Header, false, 0, tags::SENDER_COMP_ID) if b.sender.is_empty() => {
                    &mut b.sender
                }
                (Section::Header, false, 0, tags::TARGET_COMP_ID) if b.target.is_empty() => {
                    &mut b.target
                }
                (Section::Header, false, 0, tags::MSG_SEQ_NUM) if b.seq_num.is_empty() => {
                    &mut b.seq_num
                }
                (Section::Header, false, 0, tags::SENDING_TIME) if b.sending_time.is_empty() => {
                    &mut b.sending_time
                }
                (Section::Header, ..) => &mut b.header,
                (Section::Trailer, ..) => &mut b.trailer,
                (Section::Body, ..) => &mut b.body,
            };
            if f.negative {
                slot.push(b'-');
            }
            encode_field(slot, f.tag, value);
        }
        b
    }

    /// Starts a new message of type `msg_type`, keeping BeginString, SenderCompID and
    /// TargetCompID and the buffers' capacity.
    pub fn reset(&mut self, msg_type: &str) -> &mut Self {
        self.msg_type.clear();
        self.msg_type.extend_from_slice(msg_type.as_bytes());
        self.seq_num.clear();
        self.sending_time.clear();
        self.header.clear();
        self.body.clear();
        self.trailer.clear();
        self
    }

    /// Sets BeginString (8).
    pub fn begin_string(&mut self, value: &str) -> &mut Self {
        self.begin_string.clear();
        self.begin_string.extend_from_slice(value.as_bytes());
        self
    }

    /// Sets MsgType (35).
    pub fn msg_type(&mut self, value: &str) -> &mut Self {
        self.msg_type.clear();
        self.msg_type.extend_from_slice(value.as_bytes());
        self
    }

    /// Sets SenderCompID (49).
    pub fn sender_comp_id(&mut self, value: &str) -> &mut Self {
        self.sender.clear();
        encode_field(&mut self.sender, tags::SENDER_COMP_ID, value.as_bytes());
        self
    }

    /// Sets TargetCompID (56).
    pub fn target_comp_id(&mut self, value: &str) -> &mut Self {
        self.target.clear();
        encode_field(&mut self.target, tags::TARGET_COMP_ID, value.as_bytes());
        self
    }

    /// Sets MsgSeqNum (34).
    pub fn msg_seq_num(&mut self, value: u64) -> &mut Self {
        self.seq_num.clear();
        self.seq_num.extend_from_slice(b"34=");
        write_u64(&mut self.seq_num, value);
        self.seq_num.push(SOH);
        self
    }

    /// Sets SendingTime (52) from nanoseconds since the Unix epoch.
    pub fn sending_time(&mut self, nanos: i64, precision: TimestampPrecision) -> &mut Self {
        self.sending_time.clear();
        self.sending_time.extend_from_slice(b"52=");
        write_utc_timestamp(&mut self.sending_time, nanos, precision);
        self.sending_time.push(SOH);
        self
    }

    /// Sets SendingTime (52) to an already formatted value.
    pub fn sending_time_raw(&mut self, value: &[u8]) -> &mut Self {
        self.sending_time.clear();
        encode_field(&mut self.sending_time, tags::SENDING_TIME, value);
        self
    }

    /// Adds a header field after the standard ones (e.g. 43 PossDupFlag, 122).
    pub fn header_field(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        encode_field(&mut self.header, tag, value);
        self
    }

    /// Adds a trailer field before CheckSum (93 SignatureLength, 89 Signature).
    pub fn trailer_field(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        encode_field(&mut self.trailer, tag, value);
        self
    }

    /// Adds a body field.
    pub fn field(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        encode_field(&mut self.body, tag, value);
        self
    }

    /// Adds a body field with a text value.
    pub fn field_str(&mut self, tag: u32, value: &str) -> &mut Self {
        self.field(tag, value.as_bytes())
    }

    /// Adds a body field with a signed integer value.
    pub fn field_int(&mut self, tag: u32, value: i64) -> &mut Self {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        write_i64(&mut self.body, value);
        self.body.push(SOH);
        self
    }

    /// Adds a body field with an unsigned integer value (also for NumInGroup counts).
    pub fn field_u64(&mut self, tag: u32, value: u64) -> &mut Self {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        write_u64(&mut self.body, value);
        self.body.push(SOH);
        self
    }

    /// Adds a body field with a decimal value.
    pub fn field_decimal(&mut self, tag: u32, value: Decimal) -> &mut Self {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        write_decimal(&mut self.body, value);
        self.body.push(SOH);
        self
    }

    /// Adds a body field with a single-character value.
    pub fn field_char(&mut self, tag: u32, value: u8) -> &mut Self {
        self.field(tag, &[value])
    }

    /// Adds a body field with a boolean value (`Y`/`N`).
    pub fn field_bool(&mut self, tag: u32, value: bool) -> &mut Self {
        self.field(tag, if value { b"Y" } else { b"N" })
    }

    /// Adds a body field with a UTCTimestamp from nanoseconds since the Unix epoch.
    pub fn field_timestamp(
        &mut self,
        tag: u32,
        nanos: i64,
        precision: TimestampPrecision,
    ) -> &mut Self {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        write_utc_timestamp(&mut self.body, nanos, precision);
        self.body.push(SOH);
        self
    }

    /// Adds a raw data pair to the body: `length_tag=<len>` then `data_tag=<data>`,
    /// where `data` may contain SOH (e.g. 95/96 RawDataLength/RawData).
    pub fn field_data(&mut self, length_tag: u32, data_tag: u32, data: &[u8]) -> &mut Self {
        self.field_u64(length_tag, data.len() as u64);
        self.field(data_tag, data)
    }

    /// Returns the BodyLength the encoded message will have.
    #[must_use]
    pub fn body_length(&self) -> usize {
        3 + self.msg_type.len()
            + 1
            + self.sender.len()
            + self.target.len()
            + self.seq_num.len()
            + self.sending_time.len()
            + self.header.len()
            + self.body.len()
            + self.trailer.len()
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let body_length = self.body_length();
        let start = out.len();
        out.reserve(body_length + self.begin_string.len() + 20);
        out.extend_from_slice(b"8=");
        out.extend_from_slice(&self.begin_string);
        out.extend_from_slice(b"\x019=");
        write_u64(out, body_length as u64);
        out.extend_from_slice(b"\x0135=");
        out.extend_from_slice(&self.msg_type);
        out.push(SOH);
        out.extend_from_slice(&self.sender);
        out.extend_from_slice(&self.target);
        out.extend_from_slice(&self.seq_num);
        out.extend_from_slice(&self.sending_time);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.trailer);
        let sum = checksum(out.get(start..).unwrap_or_default());
        out.extend_from_slice(b"10=");
        out.push(b'0' + sum / 100);
        out.push(b'0' + sum / 10 % 10);
        out.push(b'0' + sum % 10);
        out.push(SOH);
    }

    /// Returns the encoded message.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_length() + 32);
        self.encode_into(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------
// Streaming.

/// Why the bytes at the head of a stream cannot start a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    /// `8=FIX...` is not followed by a `9=` field.
    #[error("BeginString is not followed by BodyLength (9)")]
    MissingBodyLength,
    /// BodyLength is empty, not a number, or longer than 9 digits.
    #[error("BodyLength (9) is not a number: {0:?}")]
    InvalidBodyLength(String),
    /// BodyLength exceeds the splitter's limit.
    #[error("BodyLength (9) of {declared} bytes exceeds the limit of {limit}")]
    BodyLengthTooLarge {
        /// The declared BodyLength.
        declared: u64,
        /// The limit.
        limit: usize,
    },
    /// BeginString is longer than any FIX version string.
    #[error("BeginString (8) is not terminated by SOH")]
    InvalidBeginString,
    /// No CheckSum field was found within the limit after the declared body.
    #[error("no CheckSum (10) field within {limit} bytes of the declared body end")]
    MissingChecksum {
        /// The search limit in bytes.
        limit: usize,
    },
}

/// The result of [`scan_frame`] on the head of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A frame occupies `buf[start..end]`; bytes before `start` are garbage.
    Frame {
        /// Where `8=` starts.
        start: usize,
        /// One past the SOH that ends CheckSum.
        end: usize,
    },
    /// More bytes are needed; `buf[..discard]` is garbage that can be dropped.
    Incomplete {
        /// Bytes that can be dropped.
        discard: usize,
    },
    /// The bytes at the head cannot start a message; drop `buf[..consumed]` and scan
    /// again.
    Error {
        /// What is wrong.
        error: SplitError,
        /// Bytes to drop.
        consumed: usize,
    },
}

const BEGIN: &[u8] = b"8=FIX";
const MAX_BEGIN_STRING: usize = 32;
const MAX_CHECKSUM_FIELD: usize = 16;

fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Finds the first complete frame at the head of `buf`, QuickFIX-style: it starts at
/// `8=FIX`, its body has the declared BodyLength (at most `max_body_length` bytes) and
/// it ends with the CheckSum field (`10=...<SOH>`). When the declared body does not end
/// on `<SOH>10=`, the frame extends to the next CheckSum field (parsing it then fails
/// with a BodyLength mismatch).
#[must_use]
pub fn scan_frame(buf: &[u8], max_body_length: usize) -> Scan {
    let Some(start) = find_bytes(buf, BEGIN, 0) else {
        // Keep a tail that could be the beginning of "8=FIX".
        return Scan::Incomplete {
            discard: buf.len().saturating_sub(BEGIN.len() - 1),
        };
    };
    let incomplete = Scan::Incomplete { discard: start };
    let skip = |error| Scan::Error {
        error,
        consumed: start + 2,
    };
    let limit = (start + 2 + MAX_BEGIN_STRING).min(buf.len());
    let Some(soh1) = find_soh(buf, start + 2, limit) else {
        return if buf.len() >= start + 2 + MAX_BEGIN_STRING {
            skip(SplitError::InvalidBeginString)
        } else {
            incomplete
        };
    };
    let length_at = soh1 + 1;
    match buf.get(length_at..length_at + 2) {
        Some(b"9=") => {}
        Some(_) => return skip(SplitError::MissingBodyLength),
        None => {
            return match buf.get(length_at) {
                None | Some(b'9') => incomplete,
                Some(_) => skip(SplitError::MissingBodyLength),
            }
        }
    }
    let digits_at = length_at + 2;
    let Some(soh2) = find_soh(buf, digits_at, (digits_at + 11).min(buf.len())) else {
        return if buf.len() >= digits_at + 11 {
            skip(SplitError::InvalidBodyLength(lossy(
                buf.get(digits_at..digits_at + 11).unwrap_or_default(),
            )))
        } else if buf
            .get(digits_at..)
            .unwrap_or_default()
            .iter()
            .all(u8::is_ascii_digit)
        {
            incomplete
        } else {
            skip(SplitError::InvalidBodyLength(lossy(
                buf.get(digits_at..).unwrap_or_default(),
            )))
        };
    };
    let text = buf.get(digits_at..soh2).unwrap_or_default();
    let Some(declared) = parse_digits(text).filter(|_| text.len() <= 9) else {
        return skip(SplitError::InvalidBodyLength(lossy(text)));
    };
    if declared > max_body_length as u64 {
        return skip(SplitError::BodyLengthTooLarge {
            declared,
            limit: max_body_length,
        });
    }
    let body_start = soh2 + 1;
    let body_end = body_start + declared as usize;
    // Exactly where the declared body ends?
    let Some(at_end) = buf.get(body_end..body_end + 3) else {
        return incomplete;
    };
    if at_end == b"10=" && (declared == 0 || buf.get(body_end - 1) == Some(&SOH)) {
        let from = body_end + 3;
        let to = (from + MAX_CHECKSUM_FIELD).min(buf.len());
        return match find_soh(buf, from, to) {
            Some(p) => Scan::Frame { start, end: p + 1 },
            None if buf.len() >= from + MAX_CHECKSUM_FIELD => skip(SplitError::MissingChecksum {
                limit: MAX_CHECKSUM_FIELD,
            }),
            None => incomplete,
        };
    }
    // QuickFIX: look for the next "<SOH>10=" from the declared end on.
    let window_end = body_start + max_body_length + 64;
    let search_to = window_end.min(buf.len());
    let from = body_end.saturating_sub(1).max(body_start.saturating_sub(1));
    let hay = buf.get(..search_to).unwrap_or_default();
    match find_bytes(hay, b"\x0110=", from) {
        Some(p) => {
            let value_at = p + 4;
            let to = (value_at + MAX_CHECKSUM_FIELD).min(buf.len());
            match find_soh(buf, value_at, to) {
                Some(q) => Scan::Frame { start, end: q + 1 },
                None if buf.len() >= value_at + MAX_CHECKSUM_FIELD => {
                    skip(SplitError::MissingChecksum {
                        limit: MAX_CHECKSUM_FIELD,
                    })
                }
                None => incomplete,
            }
        }
        None if buf.len() >= window_end => skip(SplitError::MissingChecksum {
            limit: max_body_length + 64,
        }),
        None => incomplete,
    }
}

/// Cuts complete FIX frames out of a byte stream (e.g. TCP reads).
///
/// Feed it bytes with [`Splitter::feed`] or [`Splitter::read_from`], then call
/// [`Splitter::next_frame`] until it returns `None`.
#[derive(Debug, Clone)]
pub struct Splitter {
    buf: Vec<u8>,
    start: usize,
    max_body_length: usize,
    discarded: u64,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// The default limit on BodyLength: 1 MiB.
    pub const DEFAULT_MAX_BODY_LENGTH: usize = 1 << 20;

    /// Returns a splitter with the default BodyLength limit.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_body_length(Self::DEFAULT_MAX_BODY_LENGTH)
    }

    /// Returns a splitter that rejects BodyLength above `max_body_length`.
    #[must_use]
    pub fn with_max_body_length(max_body_length: usize) -> Self {
        Self {
            buf: Vec::with_capacity(8192),
            start: 0,
            max_body_length,
            discarded: 0,
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Appends bytes received from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Reads once from `reader` into the buffer; returns the number of bytes read
    /// (0 at end of stream).
    ///
    /// # Errors
    /// The reader's I/O error.
    pub fn read_from<R: std::io::Read>(&mut self, reader: &mut R) -> std::io::Result<usize> {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + 8192, 0);
        let read = reader.read(self.buf.get_mut(old..).unwrap_or_default());
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        read
    }

    /// Returns the next complete frame, a [`SplitError`] for bytes that cannot start a
    /// message (they are dropped), or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], SplitError>> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match scan_frame(pending, self.max_body_length) {
            Scan::Frame { start, end } => {
                self.discarded += start as u64;
                let range = self.start + start..self.start + end;
                self.start += end;
                self.buf.get(range).map(Ok)
            }
            Scan::Incomplete { discard } => {
                self.discarded += discard as u64;
                self.start += discard;
                None
            }
            Scan::Error { error, consumed } => {
                self.discarded += consumed as u64;
                self.start += consumed;
                Some(Err(error))
            }
        }
    }

    /// Returns the bytes received but not yet returned or dropped.
    #[must_use]
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Returns how many bytes were dropped as garbage or after errors so far.
    #[must_use]
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Drops everything buffered (e.g. on reconnect).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

/// Returns the MsgType (35) of a frame that may be garbled (the first `35=` field
/// after BodyLength), e.g. to tell whether a garbled message was a Logon.
#[must_use]
pub fn peek_msg_type(frame: &[u8]) -> Option<&[u8]> {
    let at = find_bytes(frame, b"\x0135=", 0)? + 4;
    let end = find_soh(frame, at, frame.len())?;
    frame.get(at..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soh(text: &str) -> Vec<u8> {
        text.replace('|', "\u{1}").into_bytes()
    }

    /// Frames `body` (with `|` for SOH) with BodyLength and CheckSum.
    fn framed(begin: &str, body: &str) -> Vec<u8> {
        crate::frame::encode(begin, &soh(body))
    }

    const NOS: &str = "35=D|34=2|49=TW|52=20250101-00:00:00.000|56=ISLD|11=ID1|21=1|38=100|40=2|44=1.2345|54=1|55=EUR/USD|59=0|60=20250101-00:00:00.123456|";

    #[test]
    fn parses_fields_in_order_with_sections() {
        let bytes = framed("FIX.4.4", NOS);
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.begin_string(), b"FIX.4.4");
        assert_eq!(msg.msg_type(), b"D");
        assert_eq!(msg.body_length(), soh(NOS).len());
        let tags: Vec<u32> = msg.iter().map(|(t, _)| t).collect();
        assert_eq!(
            tags,
            vec![8, 9, 35, 34, 49, 52, 56, 11, 21, 38, 40, 44, 54, 55, 59, 60, 10]
        );
        let header: Vec<u32> = msg.section(Section::Header).map(|(t, _)| t).collect();
        assert_eq!(header, vec![8, 9, 35, 34, 49, 52, 56]);
        assert_eq!(msg.section(Section::Trailer).count(), 1);
        assert_eq!(msg.out_of_order_tag(), None);
        assert!(!msg.has_group_layout());
    }

    #[test]
    fn typed_getters() {
        let bytes = framed("FIX.4.4", NOS);
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.msg_seq_num(), Ok(2));
        assert_eq!(msg.get_str(55), Ok("EUR/USD"));
        assert_eq!(msg.get_int(38), Ok(100));
        assert_eq!(msg.get_decimal(44), Ok(Decimal::new(12345, 4)));
        assert_eq!(msg.get_char(54), Ok(b'1'));
        assert_eq!(msg.get_timestamp(52), Ok(1_735_689_600_000_000_000));
        assert_eq!(msg.get_timestamp(60), Ok(1_735_689_600_123_456_000));
        assert_eq!(msg.get_int(999), Err(FieldError::Missing(999)));
        assert_eq!(
            msg.get_int(55),
            Err(FieldError::Format {
                tag: 55,
                expected: "int"
            })
        );
        assert_eq!(
            msg.get_bool(54),
            Err(FieldError::Format {
                tag: 54,
                expected: "boolean"
            })
        );
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_int(b"-42"), Some(-42));
        assert_eq!(parse_int(b"+42"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"002000.00"), Some(Decimal::new(200_000, 2)));
        assert_eq!(parse_decimal(b"-.5"), Some(Decimal::new(-5, 1)));
        assert_eq!(parse_decimal(b"5."), Some(Decimal::new(5, 0)));
        assert_eq!(parse_decimal(b"+200.00"), None);
        assert_eq!(parse_decimal(b"1.2.3"), None);
        assert_eq!(parse_decimal(b"."), None);
        assert_eq!(parse_decimal(b"1e5"), None);
        assert!(is_float(b"-0.5") && is_float(b"7") && !is_float(b"") && !is_float(b"-"));
        assert_eq!(parse_bool(b"Y"), Some(true));
        assert_eq!(parse_bool(b"y"), None);
        assert_eq!(parse_utc_date(b"19700101"), Some(0));
        assert_eq!(parse_utc_date(b"20240229"), Some(19_782));
        assert_eq!(parse_utc_date(b"20230229"), None);
        assert_eq!(parse_utc_date(b"20231301"), None);
        assert_eq!(parse_utc_time_only(b"23:59:60"), Some(86_400_000_000_000));
        assert_eq!(parse_utc_time_only(b"24:00:00"), None);
        assert_eq!(parse_utc_time_only(b"12:00:00."), None);
        assert_eq!(parse_utc_time_only(b"00:00:00.1"), Some(100_000_000));
        assert_eq!(
            parse_utc_timestamp(b"20020619-16:14:10"),
            Some(1_024_503_250_000_000_000)
        );
        assert_eq!(
            parse_utc_timestamp(b"19691231-23:59:59.999"),
            Some(-1_000_000)
        );
        assert_eq!(parse_utc_timestamp(b"20020619 16:14:10"), None);
        assert_eq!(parse_utc_timestamp(b"20020619-16:14:10.1234567890"), None);
        // The format checks agree with the parsers, and accept instants past 2262.
        for v in [
            &b"20020619-16:14:10"[..],
            b"20240229-23:59:60.123456789",
            b"20230229-00:00:00",
            b"20020619 16:14:10",
            b"20020619-24:00:00",
            b"20020619-16:14:10.",
            b"2002061-16:14:10",
        ] {
            assert_eq!(is_utc_timestamp(v), parse_utc_timestamp(v).is_some());
        }
        assert!(
            is_utc_timestamp(b"23000101-00:00:00")
                && parse_utc_timestamp(b"23000101-00:00:00").is_none()
        );
        assert!(is_utc_date(b"99991231") && !is_utc_date(b"20231301") && !is_utc_date(b"2023010"));
        assert!(is_utc_time_only(b"23:59:60.1") && !is_utc_time_only(b"23:60:00"));
    }

    #[test]
    fn writes_values() {
        let mut out = Vec::new();
        write_decimal(&mut out, Decimal::new(-50, 2));
        assert_eq!(out, b"-0.50");
        assert_eq!(Decimal::new(12345, 2).to_string(), "123.45");
        assert_eq!(Decimal::new(7, 0).to_string(), "7");
        assert_eq!(
            Decimal::new(i64::MIN, 0).to_string(),
            "-9223372036854775808"
        );
        out.clear();
        write_i64(&mut out, -1234);
        assert_eq!(out, b"-1234");
        for (nanos, p, text) in [
            (0, TimestampPrecision::Seconds, "19700101-00:00:00"),
            (
                1_735_689_600_123_456_789,
                TimestampPrecision::Millis,
                "20250101-00:00:00.123",
            ),
            (
                1_735_689_600_123_456_789,
                TimestampPrecision::Micros,
                "20250101-00:00:00.123456",
            ),
            (
                1_735_689_600_123_456_789,
                TimestampPrecision::Nanos,
                "20250101-00:00:00.123456789",
            ),
            (
                -1_000_000,
                TimestampPrecision::Millis,
                "19691231-23:59:59.999",
            ),
        ] {
            out.clear();
            write_utc_timestamp(&mut out, nanos, p);
            assert_eq!(String::from_utf8_lossy(&out), text);
            let parsed = parse_utc_timestamp(&out).expect("round trip");
            assert!(nanos - parsed < 1_000_000_000 && parsed <= nanos);
        }
    }

    #[test]
    fn raw_data_may_contain_soh() {
        let mut b = MessageBuilder::new("FIX.4.2", "A");
        b.sender_comp_id("A")
            .target_comp_id("B")
            .msg_seq_num(1)
            .field_data(95, 96, b"x\x0110=123\x01y")
            .field_u64(98, 0);
        let bytes = b.encode();
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.get_bytes(96), Ok(&b"x\x0110=123\x01y"[..]));
        assert_eq!(msg.get_u64(98), Ok(0));
        // Secure data in the header and a signature in the trailer.
        let mut b = MessageBuilder::new("FIX.4.4", "0");
        b.sender_comp_id("A")
            .header_field(90, b"3")
            .header_field(91, b"\x01\x01\x01")
            .trailer_field(93, b"2")
            .trailer_field(89, b"\x01=");
        let bytes = b.encode();
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.get_bytes(91), Ok(&b"\x01\x01\x01"[..]));
        assert_eq!(msg.get_bytes(89), Ok(&b"\x01="[..]));
        assert_eq!(msg.out_of_order_tag(), None);
        // A wrong data length is a parse error.
        let bad = framed("FIX.4.2", "35=A|95=9|96=ab|98=0|");
        assert_eq!(
            Message::parse(&bad).map(|_| ()),
            Err(ParseError::DataLengthMismatch {
                tag: 96,
                declared: 9
            })
        );
        let missing = framed("FIX.4.2", "35=A|96=ab|98=0|");
        assert_eq!(
            Message::parse(&missing).map(|_| ()),
            Err(ParseError::MissingDataLength {
                tag: 96,
                length_tag: 95
            })
        );
    }

    #[test]
    fn frame_errors_are_reported() {
        let ok = framed("FIX.4.4", "35=0|34=2|49=A|56=B|");
        let mut bad_sum = ok.clone();
        let n = bad_sum.len();
        bad_sum[n - 2] = if bad_sum[n - 2] == b'9' {
            b'0'
        } else {
            bad_sum[n - 2] + 1
        };
        assert!(matches!(
            Message::parse(&bad_sum),
            Err(ParseError::Frame(FrameError::ChecksumMismatch { .. }))
        ));
        let unchecked = ParseOptions {
            verify_checksum: false,
            ..ParseOptions::default()
        };
        assert!(Message::parse_with_options(&bad_sum, &unchecked).is_ok());
        assert_eq!(
            Message::parse(b"short").map(|_| ()),
            Err(ParseError::Frame(FrameError::Truncated(5)))
        );
        assert!(matches!(
            Message::parse(&soh("8=FIX.4.2|9=5|35=0|34=2|49=A|56=B|10=000|")),
            Err(ParseError::Frame(FrameError::BodyLengthMismatch {
                declared: 5,
                actual: 20
            }))
        ));
        assert!(matches!(
            Message::parse(&framed("FIX.4.2", "34=2|35=0|49=A|")),
            Err(ParseError::Frame(FrameError::MissingMsgType))
        ));
        assert!(matches!(
            Message::parse(&framed("FIX.4.2", "35=0|4garbled9=TW|56=B|")),
            Err(ParseError::InvalidTag { .. })
        ));
        assert!(matches!(
            Message::parse(&framed("FIX.4.2", "35=0|=TW|56=B|")),
            Err(ParseError::InvalidTag { .. })
        ));
        assert!(matches!(
            Message::parse(&framed("FIX.4.2", "35=0|99999999999=TW|56=B|")),
            Err(ParseError::InvalidTag { .. })
        ));
        assert!(matches!(
            Message::parse(&soh("9=12|8=FIX.4.2|35=0|10=000|")),
            Err(ParseError::Frame(FrameError::MissingBeginString(_)))
        ));
    }

    #[test]
    fn negative_and_zero_tags_and_empty_values_parse() {
        let bytes = framed(
            "FIX.4.2",
            "35=0|34=4|49=TW42|52=20250101-00:00:00|56=|-1=HI|0=HI|",
        );
        let msg = Message::parse(&bytes).expect("parses");
        let neg = msg
            .fields()
            .iter()
            .find(|f| f.is_negative())
            .expect("negative tag");
        assert_eq!(neg.signed_tag(), -1);
        assert_eq!(neg.section(), Section::Body);
        assert_eq!(msg.get(1), None);
        assert_eq!(msg.get(0), Some(&b"HI"[..]));
        assert_eq!(msg.get(56), Some(&b""[..]));
    }

    #[test]
    fn header_after_body_is_remembered() {
        let bytes = framed(
            "FIX.4.2",
            "35=D|11=id|21=3|34=2|49=TW|52=20250101-00:00:00|56=ISLD|",
        );
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.out_of_order_tag(), Some(34));
        let bytes = framed("FIX.4.2", "35=D|34=2|49=TW|93=1|89=x|11=id|");
        let msg = Message::parse(&bytes).expect("parses");
        assert_eq!(msg.out_of_order_tag(), Some(11));
    }

    #[test]
    fn builder_orders_the_standard_header() {
        let mut b = MessageBuilder::new("FIX.4.4", "D");
        b.field_str(11, "X")
            .msg_seq_num(7)
            .header_field(43, b"Y")
            .sending_time(0, TimestampPrecision::Seconds)
            .target_comp_id("T")
            .sender_comp_id("S");
        let bytes = b.encode();
        let msg = Message::parse(&bytes).expect("parses");
        let tags: Vec<u32> = msg.iter().map(|(t, _)| t).collect();
        assert_eq!(tags, vec![8, 9, 35, 49, 56, 34, 52, 43, 11, 10]);
        assert_eq!(
            crate::frame::verify(&bytes).map(|f| f.msg_type),
            Ok("D".to_owned())
        );
        let again = MessageBuilder::from_message(&msg).encode();
        assert_eq!(again, bytes);
        // reset keeps the session identity.
        b.reset("0").msg_seq_num(8);
        let hb = b.encode();
        let msg = Message::parse(&hb).expect("parses");
        assert_eq!(msg.get_str(49), Ok("S"));
        assert_eq!(msg.get(11), None);
        assert_eq!(msg.msg_type(), b"0");
    }

    #[test]
    fn storage_is_reusable() {
        let a = framed("FIX.4.4", NOS);
        let b = framed("FIX.4.4", "35=0|34=3|49=TW|56=ISLD|");
        let storage = Message::parse(&a).expect("a").into_storage();
        let msg = Message::parse_reusing(&b, &ParseOptions::default(), storage).expect("b");
        assert_eq!(msg.len(), 7);
        assert_eq!(msg.msg_seq_num(), Ok(3));
    }

    #[test]
    fn reused_storage_forgets_the_last_message_across_index_generations() {
        // The tag index is cleared by counting generations; around the wrap (every
        // 65,535 messages) it is zeroed. Either way a tag of the previous message must
        // not be found in the next.
        let a = framed("FIX.4.4", NOS);
        let b = framed("FIX.4.4", "35=0|34=3|49=TW|56=ISLD|58=hi|");
        let mut storage = MessageStorage::with_capacity(4);
        storage.lookup.generation = u32::from(u16::MAX) - 3;
        for round in 0..8 {
            let msg = Message::parse_reusing(&a, &ParseOptions::default(), storage).expect("a");
            assert_eq!(msg.get(11), Some(&b"ID1"[..]), "round {round}");
            assert_eq!(msg.get(58), None, "round {round}");
            let msg = Message::parse_reusing(&b, &ParseOptions::default(), msg.into_storage())
                .expect("b");
            assert_eq!(msg.get(58), Some(&b"hi"[..]), "round {round}");
            assert_eq!(msg.get(11), None, "round {round}");
            assert_eq!(msg.get(55), None, "round {round}");
            storage = msg.into_storage();
        }
        assert!(storage.lookup.generation < 20);
    }

    #[test]
    fn splitter_handles_garbage_partial_reads_and_bad_lengths() {
        let m1 = framed("FIX.4.2", "35=0|34=2|49=A|56=B|");
        let m2 = framed("FIX.4.4", "35=1|34=3|49=A|56=B|112=X|");
        let mut stream = b"garbage\x01\x018=FI".to_vec();
        stream.extend_from_slice(&m1);
        stream.extend_from_slice(&m2);
        let mut s = Splitter::new();
        let mut frames = Vec::new();
        for chunk in stream.chunks(3) {
            s.feed(chunk);
            while let Some(r) = s.next_frame() {
                frames.push(r.map(<[u8]>::to_vec));
            }
        }
        assert_eq!(frames, vec![Ok(m1.clone()), Ok(m2.clone())]);
        assert_eq!(s.discarded_bytes(), 13);
        assert!(s.buffered().is_empty());

        // Oversized and invalid BodyLength are typed errors; the next message survives.
        let mut s = Splitter::with_max_body_length(64);
        s.feed(&soh("8=FIX.4.2|9=100000|35=0|"));
        s.feed(&soh("8=FIX.4.2|9=1x|35=0|"));
        s.feed(&m1);
        assert_eq!(
            s.next_frame(),
            Some(Err(SplitError::BodyLengthTooLarge {
                declared: 100_000,
                limit: 64
            }))
        );
        assert!(matches!(
            s.next_frame(),
            Some(Err(SplitError::InvalidBodyLength(_)))
        ));
        assert_eq!(s.next_frame(), Some(Ok(&m1[..])));
        assert_eq!(s.next_frame(), None);
    }

    #[test]
    fn splitter_extends_wrong_body_lengths_to_the_next_checksum() {
        // QuickFIX acceptance 2m: a too-short BodyLength swallows only its own message,
        // a too-long one also swallows the next message.
        let good = framed("FIX.4.4", "35=D|34=3|49=TW|56=ISLD|11=ID|");
        let mut short = soh("8=FIX.4.4|9=10|35=D|34=2|49=TW|56=ISLD|11=ID|10=123|");
        short.extend_from_slice(&good);
        let mut s = Splitter::new();
        s.feed(&short);
        let first = s.next_frame().expect("frame").expect("ok").to_vec();
        assert!(matches!(
            Message::parse(&first),
            Err(ParseError::Frame(FrameError::BodyLengthMismatch { .. }))
        ));
        assert_eq!(peek_msg_type(&first), Some(&b"D"[..]));
        assert_eq!(s.next_frame(), Some(Ok(&good[..])));

        let mut long = soh("8=FIX.4.4|9=40|35=D|34=2|49=TW|56=ISLD|10=123|");
        long.extend_from_slice(&good);
        long.extend_from_slice(&good);
        let mut s = Splitter::new();
        s.feed(&long);
        let first = s.next_frame().expect("frame").expect("ok").to_vec();
        assert!(first.len() > good.len(), "the next message is swallowed");
        assert_eq!(s.next_frame(), Some(Ok(&good[..])));
        assert_eq!(s.next_frame(), None);
    }

    #[test]
    fn splitter_reads_from_a_reader() {
        let m1 = framed("FIX.4.2", "35=0|34=2|49=A|56=B|");
        let mut reader = std::io::Cursor::new(m1.repeat(3));
        let mut s = Splitter::new();
        let mut n = 0;
        while s.read_from(&mut reader).expect("read") > 0 {
            while let Some(frame) = s.next_frame() {
                assert_eq!(frame, Ok(&m1[..]));
                n += 1;
            }
        }
        assert_eq!(n, 3);
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    /// A body field: (tag, value), or a data pair when `data` is set.
    #[derive(Debug, Clone)]
    enum Item {
        Field(u32, Vec<u8>),
        Data(Vec<u8>),
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            4 => (1u32..100_000, proptest::collection::vec(0x20u8..0x7f, 0..12))
                .prop_filter("not a standard header, trailer or data tag", |(t, _)| {
                    !builtin_is_header(*t)
                        && !matches!(t, 10 | 89 | 93)
                        && builtin_length_for_data(*t).is_none()
                })
                .prop_map(|(t, v)| Item::Field(t, v)),
            1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Item::Data),
        ]
    }

    /// NewOrderSingle with RawData (95/96) and the Parties group (PartyID 448,
    /// PartyRole 452).
    const GROUP_DICTIONARY: &str = "<fix major='4' minor='4'>
 <header><field name='BeginString' required='Y' /><field name='BodyLength' required='Y' />
  <field name='MsgType' required='Y' /></header>
 <trailer><field name='CheckSum' required='Y' /></trailer>
 <messages><message name='NewOrderSingle' msgtype='D' msgcat='app'>
  <field name='RawDataLength' required='N' /><field name='RawData' required='N' />
  <group name='NoPartyIDs' required='N'><field name='PartyID' required='N' />
   <field name='PartyRole' required='N' /></group>
 </message></messages>
 <components />
 <fields>
  <field number='8' name='BeginString' type='STRING' />
  <field number='9' name='BodyLength' type='LENGTH' />
  <field number='10' name='CheckSum' type='STRING' />
  <field number='35' name='MsgType' type='STRING' />
  <field number='95' name='RawDataLength' type='LENGTH' />
  <field number='96' name='RawData' type='DATA' />
  <field number='448' name='PartyID' type='STRING' />
  <field number='452' name='PartyRole' type='INT' />
  <field number='453' name='NoPartyIDs' type='NUMINGROUP' />
 </fields>
</fix>";

    fn build(seq: u64, sender: &str, items: &[Item]) -> Vec<u8> {
        let mut b = MessageBuilder::new("FIX.4.4", "8");
        b.sender_comp_id(sender)
            .target_comp_id("ISLD")
            .msg_seq_num(seq)
            .sending_time(1_735_689_600_000_000_000, TimestampPrecision::Millis);
        for it in items {
            match it {
                Item::Field(t, v) => {
                    b.field(*t, v);
                }
                Item::Data(d) => {
                    b.field_data(95, 96, d);
                }
            }
        }
        b.encode()
    }

    proptest! {
        #[test]
        fn encode_parse_round_trips(seq in 1u64..1_000_000_000, sender in "[A-Z]{1,8}", items in proptest::collection::vec(item(), 0..24)) {
            let bytes = build(seq, &sender, &items);
            let msg = Message::parse(&bytes).expect("built messages parse");
            prop_assert_eq!(msg.msg_seq_num(), Ok(seq));
            prop_assert_eq!(msg.get_str(49), Ok(sender.as_str()));
            let body: Vec<(u32, Vec<u8>)> = msg.section(Section::Body).map(|(t, v)| (t, v.to_vec())).collect();
            let mut expected = Vec::new();
            for it in &items {
                match it {
                    Item::Field(t, v) => expected.push((*t, v.clone())),
                    Item::Data(d) => {
                        expected.push((95, d.len().to_string().into_bytes()));
                        expected.push((96, d.clone()));
                    }
                }
            }
            prop_assert_eq!(body, expected);
            let again = MessageBuilder::from_message(&msg).encode();
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn find_soh_matches_a_byte_scan(bytes in proptest::collection::vec(prop_oneof![Just(SOH), any::<u8>()], 0..80), a in 0usize..90, b in 0usize..90) {
            let (from, to) = (a.min(b), a.max(b));
            let naive = bytes.get(from..to).and_then(|h| h.iter().position(|&x| x == SOH)).map(|p| p + from);
            prop_assert_eq!(find_soh(&bytes, from, to), naive);
        }

        #[test]
        fn parse_tag_matches_the_byte_loop(
            digits in proptest::collection::vec(prop_oneof![8 => b'0'..=b'9', 1 => any::<u8>()], 0..12),
            rest in proptest::collection::vec(prop_oneof![Just(b'='), Just(SOH), any::<u8>()], 0..10),
        ) {
            let mut bytes = digits;
            bytes.push(b'=');
            bytes.extend_from_slice(&rest);
            for start in 0..bytes.len() {
                let tail = &bytes[start..];
                prop_assert_eq!(parse_tag(tail), parse_tag_slow(tail), "{:?}", lossy(tail));
            }
        }

        #[test]
        fn tag_words_match_the_byte_loop(word in any::<u64>(), digits in 0usize..=8, tag in any::<u32>(), eq_at in 0usize..8) {
            // Random words, and words made of `digits` digits then `=` (or digits up
            // to `eq_at` and then a random byte), read as the tokenizer reads them.
            let mut shaped = word.to_le_bytes();
            let text = tag.to_string().into_bytes();
            for (i, b) in shaped.iter_mut().enumerate().take(digits.min(text.len())) {
                *b = text[i];
            }
            if digits < 8 {
                shaped[digits.min(text.len())] = b'=';
            }
            shaped[eq_at] = if eq_at % 2 == 0 { b'=' } else { shaped[eq_at] };
            for w in [word, u64::from_le_bytes(shaped)] {
                let bytes = w.to_le_bytes();
                let expected = parse_tag_slow(&bytes);
                match tag_of_word(w) {
                    TagWord::Tag(t, n) => prop_assert_eq!(Some((t, n)), expected),
                    TagWord::Invalid => prop_assert_eq!(None, expected),
                    // Eight digits or more: the slow path decides, with more bytes.
                    TagWord::Long => prop_assert!(bytes.iter().all(u8::is_ascii_digit)),
                }
            }
        }

        #[test]
        fn soh_bits_mark_every_soh_of_a_body(
            body in proptest::collection::vec(prop_oneof![1 => Just(SOH), 6 => any::<u8>()], 0..200),
            pad in 0usize..70,
            lead in 0usize..8,
        ) {
            // A checked frame's body ends with SOH and seven trailer bytes follow;
            // `pad` bytes before it move the body across block alignments and the
            // buffer's length across 64, `lead` bytes of the body are taken already.
            let mut buf = vec![b'x'; pad];
            buf.extend_from_slice(&body);
            buf.push(SOH);
            let end = buf.len();
            buf.extend_from_slice(b"10=123\x01");
            let start = (pad + lead).min(end - 1);
            let naive: Vec<usize> =
                (start..end).filter(|&i| buf[i] == SOH).collect();
            let mut block = start;
            let mut sohs = soh_bits(&buf, block, end);
            let mut found = Vec::new();
            while let Some(at) = next_soh(&buf, &mut block, &mut sohs, end) {
                found.push(at);
            }
            prop_assert_eq!(found, naive);
            let marks = soh_marks(u64::from_le_bytes(buf[start..start + 8].try_into().expect("8 bytes")));
            let in_word = buf[start..start + 8].iter().position(|&b| b == SOH);
            prop_assert_eq!((marks != 0).then(|| (marks.trailing_zeros() / 8) as usize), in_word);
        }

        #[test]
        fn soh_masks_agree_with_the_bytes(
            block in proptest::collection::vec(prop_oneof![1 => Just(SOH), 1 => Just(0u8), 6 => any::<u8>()], 64),
        ) {
            let block: [u8; 64] = block.try_into().expect("64 bytes");
            let naive = block
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == SOH)
                .fold(0u64, |bits, (i, _)| bits | 1 << i);
            prop_assert_eq!(soh_mask64(&block), naive);
            prop_assert_eq!(soh_mask64_in_words(&block), naive);
        }

        #[test]
        fn tokenizer_matches_a_reference_split(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        8 => (1u32..2_000).prop_map(|t| t.to_string()),
                        1 => (0u32..u32::MAX).prop_map(|t| t.to_string()),
                        1 => "-?0{0,3}[0-9]{1,12}",
                        1 => "[0-9=A-Z-]{0,3}",
                    ],
                    proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'='), 1 => 0x80u8..=0xff], 0..20),
                ),
                0..16,
            ),
            pad in 0usize..8,
            verify in any::<bool>(),
        ) {
            // Raw data tags take their length from another field: left to the other tests.
            let fields: Vec<(String, Vec<u8>)> = fields
                .into_iter()
                .filter(|(t, _)| t.parse::<u32>().map_or(true, |t| builtin_length_for_data(t).is_none()))
                .collect();
            let mut body = b"35=D\x01".to_vec();
            for (tag, value) in &fields {
                body.extend_from_slice(tag.as_bytes());
                body.push(b'=');
                body.extend_from_slice(value);
                body.push(SOH);
            }
            let mut buf = vec![b'x'; pad];
            buf.extend_from_slice(&crate::frame::encode("FIX.4.4", &body));
            let bytes = &buf[pad..];
            let options = ParseOptions { verify_checksum: verify, ..ParseOptions::default() };
            let parsed = Message::parse_with_options(bytes, &options);

            // The reference: split on SOH, then on the first `=`; an optional `-`, then
            // 1 to 10 digits that fit in u32. Sections as the original state machine.
            let body_start = bytes.len() - 7 - body.len();
            let mut expected = Vec::new();
            let mut error = None;
            let mut at = body_start;
            let mut state = Section::Header;
            let mut out_of_order = None;
            for raw in body.split(|&b| b == SOH) {
                if at >= bytes.len() - 7 {
                    break;
                }
                let (negative, digits_and_value) = match raw.split_first() {
                    Some((b'-', rest)) => (true, rest),
                    _ => (false, raw),
                };
                let eq = digits_and_value.iter().position(|&b| b == b'=');
                let tag = eq
                    .filter(|&n| (1..=10).contains(&n))
                    .and_then(|n| std::str::from_utf8(&digits_and_value[..n]).ok())
                    .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u32>().ok());
                let (Some(tag), Some(eq)) = (tag, eq) else {
                    error = Some(ParseError::InvalidTag { offset: at });
                    break;
                };
                let flags = if negative { 0 } else { builtin_flags(tag) };
                let section = if flags & FLAG_HEADER != 0 {
                    if state != Section::Header && out_of_order.is_none() {
                        out_of_order = Some(tag);
                    }
                    Section::Header
                } else if flags & FLAG_TRAILER != 0 {
                    state = Section::Trailer;
                    Section::Trailer
                } else {
                    if state == Section::Trailer && out_of_order.is_none() {
                        out_of_order = Some(tag);
                    }
                    state = Section::Body;
                    Section::Body
                };
                expected.push((tag, negative, section, digits_and_value[eq + 1..].to_vec()));
                at += raw.len() + 1;
            }
            match (parsed, error) {
                (Ok(msg), None) => {
                    let got: Vec<(u32, bool, Section, Vec<u8>)> = msg
                        .fields()
                        .iter()
                        .skip(2)
                        .take(msg.len() - 3)
                        .map(|f| (f.tag(), f.is_negative(), f.section(), msg.value(f).to_vec()))
                        .collect();
                    prop_assert_eq!(got, expected);
                    prop_assert_eq!(msg.out_of_order_tag(), out_of_order);
                }
                (Err(e), Some(error)) => prop_assert_eq!(e, error),
                (parsed, error) => prop_assert!(false, "parsed {:?}, expected error {:?}", parsed.map(|m| m.len()), error),
            }
        }

        #[test]
        fn reused_storage_parses_as_fresh_storage(
            messages in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        prop_oneof![
                            4 => (1u32..600).prop_map(|t| t.to_string()),
                            1 => (0u32..u32::MAX).prop_map(|t| t.to_string()),
                            1 => "0{1,3}[0-9]{1,4}",
                            1 => "[0-9=A-Z-]{0,3}",
                        ],
                        proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'='), 1 => 0x80u8..=0xff], 0..10),
                    ),
                    0..12,
                ),
                1..12,
            ),
            dictionaries in proptest::collection::vec(0usize..3, 12),
        ) {
            // The tag cache a storage keeps from one message to the next (tags with
            // leading zeros, shared first bytes, one digit and a changing first value
            // byte, invalid and long tags) gives the fields a fresh storage gives, also
            // when the next message is parsed with other dictionaries (the flags it
            // remembers differ: Account (1) is a header field in one of them).
            let groups = Dictionary::from_xml(GROUP_DICTIONARY, "groups.xml").expect("dictionary");
            let account_in_header = Dictionary::from_xml(
                &GROUP_DICTIONARY
                    .replace("<field name='MsgType' required='Y' />", "<field name='MsgType' required='Y' /><field name='Account' required='N' />")
                    .replace("<field number='8' ", "<field number='1' name='Account' type='STRING' /><field number='8' "),
                "header.xml",
            )
            .expect("dictionary");
            prop_assert!(account_in_header.is_header_field(1));
            let mut storage = Some(MessageStorage::default());
            for (fields, &which) in messages.iter().zip(&dictionaries) {
                let mut body = b"35=D\x011=A\x01".to_vec();
                for (tag, value) in fields {
                    if tag.parse::<u32>().is_ok_and(|t| builtin_length_for_data(t).is_some()) {
                        continue;
                    }
                    body.extend_from_slice(tag.as_bytes());
                    body.push(b'=');
                    body.extend_from_slice(value);
                    body.push(SOH);
                }
                let bytes = crate::frame::encode("FIX.4.4", &body);
                let options = match which {
                    0 => ParseOptions::default(),
                    1 => ParseOptions::with_dictionary(&groups),
                    _ => ParseOptions::with_dictionary(&account_in_header),
                };
                let fresh = Message::parse_with_options(&bytes, &options);
                let reused = Message::parse_reusing(&bytes, &options, storage.take().unwrap_or_default());
                match (fresh, reused) {
                    (Ok(fresh), Ok(reused)) => {
                        prop_assert_eq!(fresh.fields(), reused.fields());
                        prop_assert_eq!(fresh.out_of_order_tag(), reused.out_of_order_tag());
                        storage = Some(reused.into_storage());
                    }
                    (Err(fresh), Err(reused)) => prop_assert_eq!(fresh, reused),
                    (fresh, reused) => prop_assert!(false, "fresh {:?}, reused {:?}", fresh.map(|m| m.len()), reused.map(|m| m.len())),
                }
            }
        }

        #[test]
        fn text_matches_from_utf8(
            bytes in proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(0xc3u8), 1 => Just(0xa9u8)], 0..40),
            text in "\\PC{0,12}",
            start in 0usize..8,
        ) {
            let mut with_text = bytes.clone();
            with_text.extend_from_slice(text.as_bytes());
            for all in [&bytes, &with_text] {
                let v = &all[start.min(all.len())..];
                prop_assert_eq!(text_of(v), std::str::from_utf8(v).ok());
            }
        }

        #[test]
        fn decimal_fast_path_matches_the_checked_parse(text in "-?[0-9.]{0,22}|[0-9.x+-]{0,6}") {
            let v = text.as_bytes();
            let (negative, digits) = match v.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, v),
            };
            prop_assert_eq!(parse_decimal(v), parse_decimal_checked(negative, digits), "{}", text);
        }

        #[test]
        fn decimal_words_match_the_byte_parse(
            bytes in proptest::collection::vec(prop_oneof![6 => b'0'..=b'9', 1 => Just(b'.'), 1 => Just(b'-'), 1 => any::<u8>()], 1..=8),
            above in any::<u64>(),
        ) {
            // The value in the low bytes of a word, anything above it.
            let mut word = above.to_le_bytes();
            word[..bytes.len()].copy_from_slice(&bytes);
            prop_assert_eq!(decimal_of_word(u64::from_le_bytes(word), bytes.len()), parse_decimal(&bytes), "{:?}", lossy(&bytes));
        }

        #[test]
        fn message_getters_match_the_value_parsers(
            values in proptest::collection::vec(
                prop_oneof![
                    "-?[0-9]{0,9}(\\.[0-9]{0,9})?".prop_map(String::into_bytes),
                    "[ -~]{0,12}".prop_map(String::into_bytes),
                    "\\PC{0,6}".prop_map(String::into_bytes),
                    proptest::collection::vec(prop_oneof![0x02u8..0x80, 0x80u8..=0xff], 0..12),
                ],
                1..10,
            ),
            parties in proptest::collection::vec("\\PC{0,6}|[0-9.]{0,9}".prop_map(String::into_bytes), 0..3),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
            pad in 0usize..8,
        ) {
            // Text and decimals read from a message (its text checked once, values of
            // up to eight bytes read as a word) give what the plain parsers give for
            // the raw value: ASCII or not, invalid UTF-8 (in a value, or only in a
            // data field), at any alignment, up to CheckSum at the end.
            let dictionary = Dictionary::from_xml(GROUP_DICTIONARY, "groups.xml").expect("dictionary");
            let mut b = MessageBuilder::new("FIX.4.4", "D");
            b.sender_comp_id("S").target_comp_id("T").msg_seq_num(1).sending_time_raw(b"20250101-00:00:00");
            if let Some(data) = &data {
                b.field_data(95, 96, data);
            }
            if !parties.is_empty() {
                b.field_u64(453, parties.len() as u64);
                for party in &parties {
                    b.field(448, party).field(452, b"1");
                }
            }
            for (i, value) in values.iter().enumerate() {
                b.field(5000 + i as u32, value);
            }
            let mut buf = vec![b'x'; pad];
            buf.extend_from_slice(&b.encode());
            let bytes = &buf[pad..];
            let msg = Message::parse_with(bytes, &dictionary).expect("built messages parse");
            let text_error = |tag| FieldError::Format { tag, expected: "string" };
            let decimal_error = |tag| FieldError::Format { tag, expected: "decimal" };
            for tag in (5000..5000 + values.len() as u32).chain([8, 10, 35, 49, 95, 96, 452, 453, 4999]) {
                let raw = msg.get_bytes(tag);
                prop_assert_eq!(msg.get_str(tag), raw.and_then(|v| text_of(v).ok_or(text_error(tag))), "tag {}", tag);
                prop_assert_eq!(msg.get_decimal(tag), raw.and_then(|v| parse_decimal(v).ok_or(decimal_error(tag))), "tag {}", tag);
            }
            let entries: Vec<Entry<'_, '_>> = msg.group(453).map(|g| g.entries().collect()).unwrap_or_default();
            prop_assert_eq!(entries.len(), parties.len());
            for entry in entries {
                for tag in [448, 452, 453] {
                    let raw = entry.get_bytes(tag);
                    prop_assert_eq!(entry.get_str(tag), raw.and_then(|v| text_of(v).ok_or(text_error(tag))));
                    prop_assert_eq!(entry.get_decimal(tag), raw.and_then(|v| parse_decimal(v).ok_or(decimal_error(tag))));
                }
            }
        }

        #[test]
        fn unsigned_fast_path_matches_the_checked_parse(text in "[0-9]{0,22}|[0-9x+-]{0,4}") {
            prop_assert_eq!(parse_u64(text.as_bytes()), parse_u64_checked(text.as_bytes()), "{}", text);
        }

        #[test]
        fn lookups_find_the_first_top_level_field(
            tags in proptest::collection::vec(prop_oneof![1u32..40, (1u32..8).prop_map(|k| 11 + 256 * k), 1u32..5000], 1..30),
        ) {
            // Tags in the same lookup slot (11, 267, 523...), repeats, and the
            // Parties group of the dictionary-less built-ins do not exist: every
            // field is top level, so the first with the tag is the answer.
            let items: Vec<Item> = tags
                .iter()
                .filter(|t| !builtin_is_header(**t) && !matches!(t, 10 | 89 | 93) && builtin_length_for_data(**t).is_none())
                .enumerate()
                .map(|(i, t)| Item::Field(*t, i.to_string().into_bytes()))
                .collect();
            let bytes = build(7, "S", &items);
            let msg = Message::parse(&bytes).expect("built messages parse");
            for probe in tags.iter().copied().chain([5, 267, 9999, 11 + 256 * 9]) {
                let naive = msg.fields().iter().find(|f| f.tag() == probe && f.depth() == 0 && !f.is_negative()).map(|f| msg.value(f));
                prop_assert_eq!(msg.get(probe), naive, "tag {}", probe);
            }
        }

        #[test]
        fn integers_round_trip(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            prop_assert_eq!(parse_int(&out), Some(v));
            out.clear();
            write_u64(&mut out, u);
            prop_assert_eq!(parse_u64(&out), Some(u));
        }

        #[test]
        fn decimals_and_timestamps_round_trip(m in any::<i64>(), scale in 0u8..=18, nanos in -2_000_000_000_000_000_000i64..9_000_000_000_000_000_000) {
            let d = Decimal::new(m, scale);
            let mut out = Vec::new();
            write_decimal(&mut out, d);
            prop_assert_eq!(parse_decimal(&out), Some(d));
            out.clear();
            write_utc_timestamp(&mut out, nanos, TimestampPrecision::Nanos);
            prop_assert_eq!(parse_utc_timestamp(&out), Some(nanos));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_messages(items in proptest::collection::vec(item(), 0..8), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
            let mut bytes = build(1, "A", &items);
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let _ = Message::parse(&bytes);
            let _ = scan_frame(&bytes, 1 << 10);
        }

        #[test]
        fn splitter_is_chunking_invariant(
            messages in proptest::collection::vec((1u64..1000, proptest::collection::vec(item(), 0..6)), 1..8),
            garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 8),
            cuts in proptest::collection::vec(1usize..40, 1..64),
        ) {
            let mut stream = Vec::new();
            for (k, (seq, items)) in messages.iter().enumerate() {
                stream.extend_from_slice(&garbage[k % garbage.len()]);
                stream.extend_from_slice(&build(*seq, "S", items));
            }
            let collect = |chunks: &mut dyn Iterator<Item = &[u8]>| {
                let mut s = Splitter::with_max_body_length(4096);
                let mut out = Vec::new();
                for chunk in chunks {
                    s.feed(chunk);
                    while let Some(r) = s.next_frame() {
                        out.push(r.map(<[u8]>::to_vec));
                    }
                }
                out
            };
            let one_shot = collect(&mut std::iter::once(&stream[..]));
            let mut pieces = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < stream.len() {
                let n = cuts[k % cuts.len()].min(stream.len() - at);
                pieces.push(&stream[at..at + n]);
                at += n;
                k += 1;
            }
            let chunked = collect(&mut pieces.into_iter());
            prop_assert_eq!(&chunked, &one_shot);
            // Every clean message comes out intact (garbage may add errors or
            // swallow nothing valid since it contains no "8=FIX").
            let frames: Vec<Vec<u8>> = one_shot.into_iter().filter_map(Result::ok).collect();
            let valid = frames.iter().filter(|f| Message::parse(f).is_ok()).count();
            if garbage.iter().all(|g| find_bytes(g, BEGIN, 0).is_none() && !g.contains(&b'8')) {
                prop_assert_eq!(valid, messages.len());
            }
        }
    }
}
