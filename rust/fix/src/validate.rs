//! Validation of FIX messages against a data dictionary, with the SessionRejectReason of each failure.
//!
//! [`Validator::validate`] checks a parsed [`Message`] the way QuickFIX's
//! `DataDictionary::validate` does and returns the first problem as a [`Reject`]: the
//! SessionRejectReason (373), RefTagID (371), RefMsgType (372), RefSeqNum (45) and the
//! Text (58) QuickFIX sends, for the session layer to turn into a Reject (35=3).
//!
//! # Order of the checks (QuickFIX's)
//!
//! 1. structure: a header field after the body or a body field after the trailer (14);
//! 2. MsgType not in the dictionary (11, no RefTagID);
//! 3. a group entry that does not start with the group's delimiter (15);
//! 4. required fields: header, trailer, body (ascending tag order), group entries (1);
//! 5. every header, trailer and body field, in ascending tag order (header: 8, 9, 35
//!    first): repeated (13), empty (4), format (6), enum (5), unknown tag (0), not in
//!    this message type (2), NumInGroup different from the entries found (16); then
//!    the fields of every group entry.
//!
//! A message whose MsgType is in the dictionary passes even when the application does
//! not support it: answering that with a BusinessMessageReject (35=j, 380=3) is the
//! application's call. [`Validator::msg_type_status`] tells "not in the dictionary"
//! (Reject 373=11) from "admin" and "application" types.
//!
//! BeginString, CompIDs, SendingTime accuracy and sequence numbers are session-layer
//! checks and are not done here. Frames whose first three fields are not 8, 9, 35 are
//! garbled ([`crate::message::ParseError`]), not rejected: QuickFIX ignores them
//! (acceptance test 2t), so 373=14 only covers header/body/trailer order (14g).
//!
//! # Reasons and texts
//!
//! The Text values are QuickFIX's (`Values.h`); the acceptance scripts in
//! `fix/acceptance/fix42|fix44` expect them byte for byte.
//!
//! | 373 | [`SessionRejectReason`] | Text (58) | Raised when | QuickFIX script |
//! |---:|---|---|---|---|
//! | 0 | `InvalidTagNumber` | Invalid tag number | tag not in the dictionary, `0`, or negative (`-1=`) | 14a |
//! | 1 | `RequiredTagMissing` | Required tag missing | a required header, trailer, body or group-entry field is absent | 14b |
//! | 2 | `TagNotDefinedForMessageType` | Tag not defined for this message type | a known tag that the message type does not have | 14c |
//! | 3 | `UndefinedTag` | Undefined Tag | not raised (QuickFIX reports unknown tags as 0) | – |
//! | 4 | `TagSpecifiedWithoutValue` | Tag specified without a value | `tag=` with an empty value | 14d |
//! | 5 | `ValueIsIncorrect` | Value is incorrect (out of range) for this tag | value not among the field's enums (each item for multiple-value types) | 14e |
//! | 6 | `IncorrectDataFormat` | Incorrect data format for value | int, float (price, qty, amt...), char, boolean, UTCTimestamp, UTCTimeOnly, UTCDate, NumInGroup, SeqNum, Length syntax | 14f |
//! | 11 | `InvalidMsgType` | Invalid MsgType | MsgType not in the dictionary (no RefTagID) | 2q |
//! | 13 | `TagAppearsMoreThanOnce` | Tag appears more than once | a tag repeated outside repeating groups | 14h |
//! | 14 | `TagSpecifiedOutOfRequiredOrder` | Tag specified out of required order | header field after a body field, or body field after a trailer field | 14g |
//! | 15 | `RepeatingGroupFieldsOutOfOrder` | Repeating group fields out of order | a group entry not starting with the delimiter (optionally, members out of dictionary order) | (14j is not in the shipped scripts) |
//! | 16 | `IncorrectNumInGroupCount` | Incorrect NumInGroup count for repeating group | NumInGroup differs from the number of entries | 14i |
//!
//! For FIX.4.2 QuickFIX leaves 373 out when the reason is above 11 (the 14g/14h/14i
//! scripts expect no 373): see [`Reject::includes_reason`]. Before FIX.4.2 there are no
//! RefTagID/RefMsgType fields and the tag goes into the text: [`Reject::text_for`].

use std::fmt;

use thiserror::Error;

use crate::dictionary::{
    Block, Dictionary, FieldType, FLAG_CHECKED_VALUE, FLAG_DEFINED, FLAG_GROUP_COUNT,
};
use crate::message::{
    is_float, is_utc_date, is_utc_time_only, is_utc_timestamp, parse_bool, parse_int, parse_u64,
    FieldRef, Message, MessageStorage, ParseError, ParseOptions, Section,
};

/// SessionRejectReason (373) values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionRejectReason {
    /// 0: Invalid tag number.
    InvalidTagNumber,
    /// 1: Required tag missing.
    RequiredTagMissing,
    /// 2: Tag not defined for this message type.
    TagNotDefinedForMessageType,
    /// 3: Undefined tag.
    UndefinedTag,
    /// 4: Tag specified without a value.
    TagSpecifiedWithoutValue,
    /// 5: Value is incorrect (out of range) for this tag.
    ValueIsIncorrect,
    /// 6: Incorrect data format for value.
    IncorrectDataFormat,
    /// 7: Decryption problem.
    DecryptionProblem,
    /// 8: Signature problem.
    SignatureProblem,
    /// 9: CompID problem.
    CompIdProblem,
    /// 10: SendingTime accuracy problem.
    SendingTimeAccuracyProblem,
    /// 11: Invalid MsgType.
    InvalidMsgType,
    /// 12: XML validation error.
    XmlValidationError,
    /// 13: Tag appears more than once.
    TagAppearsMoreThanOnce,
    /// 14: Tag specified out of required order.
    TagSpecifiedOutOfRequiredOrder,
    /// 15: Repeating group fields out of order.
    RepeatingGroupFieldsOutOfOrder,
    /// 16: Incorrect NumInGroup count for repeating group.
    IncorrectNumInGroupCount,
    /// 17: Non "data" value includes field delimiter (SOH).
    NonDataValueIncludesFieldDelimiter,
    /// 18: Invalid/unsupported application version.
    InvalidApplVersion,
    /// 99: Other.
    Other,
}

impl SessionRejectReason {
    const ALL: [Self; 20] = [
        Self::InvalidTagNumber,
        Self::RequiredTagMissing,
        Self::TagNotDefinedForMessageType,
        Self::UndefinedTag,
        Self::TagSpecifiedWithoutValue,
        Self::ValueIsIncorrect,
        Self::IncorrectDataFormat,
        Self::DecryptionProblem,
        Self::SignatureProblem,
        Self::CompIdProblem,
        Self::SendingTimeAccuracyProblem,
        Self::InvalidMsgType,
        Self::XmlValidationError,
        Self::TagAppearsMoreThanOnce,
        Self::TagSpecifiedOutOfRequiredOrder,
        Self::RepeatingGroupFieldsOutOfOrder,
        Self::IncorrectNumInGroupCount,
        Self::NonDataValueIncludesFieldDelimiter,
        Self::InvalidApplVersion,
        Self::Other,
    ];

    /// Returns the value of tag 373.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Self::InvalidTagNumber => 0,
            Self::RequiredTagMissing => 1,
            Self::TagNotDefinedForMessageType => 2,
            Self::UndefinedTag => 3,
            Self::TagSpecifiedWithoutValue => 4,
            Self::ValueIsIncorrect => 5,
            Self::IncorrectDataFormat => 6,
            Self::DecryptionProblem => 7,
            Self::SignatureProblem => 8,
            Self::CompIdProblem => 9,
            Self::SendingTimeAccuracyProblem => 10,
            Self::InvalidMsgType => 11,
            Self::XmlValidationError => 12,
            Self::TagAppearsMoreThanOnce => 13,
            Self::TagSpecifiedOutOfRequiredOrder => 14,
            Self::RepeatingGroupFieldsOutOfOrder => 15,
            Self::IncorrectNumInGroupCount => 16,
            Self::NonDataValueIncludesFieldDelimiter => 17,
            Self::InvalidApplVersion => 18,
            Self::Other => 99,
        }
    }

    /// Returns the reason with 373 value `code`.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Returns the Text (58) QuickFIX sends with this reason.
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidTagNumber => "Invalid tag number",
            Self::RequiredTagMissing => "Required tag missing",
            Self::TagNotDefinedForMessageType => "Tag not defined for this message type",
            Self::UndefinedTag => "Undefined Tag",
            Self::TagSpecifiedWithoutValue => "Tag specified without a value",
            Self::ValueIsIncorrect => "Value is incorrect (out of range) for this tag",
            Self::IncorrectDataFormat => "Incorrect data format for value",
            Self::DecryptionProblem => "Decryption problem",
            Self::SignatureProblem => "Signature problem",
            Self::CompIdProblem => "CompID problem",
            Self::SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            Self::InvalidMsgType => "Invalid MsgType",
            Self::XmlValidationError => "XML Validation error",
            Self::TagAppearsMoreThanOnce => "Tag appears more than once",
            Self::TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            Self::RepeatingGroupFieldsOutOfOrder => "Repeating group fields out of order",
            Self::IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
            Self::NonDataValueIncludesFieldDelimiter => {
                "Non Data value includes field delimiter (SOH character)"
            }
            Self::InvalidApplVersion => "Invalid/Unsupported Application Version",
            Self::Other => "Other",
        }
    }
}

impl fmt::Display for SessionRejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A session-level rejection of a message: what the Reject (35=3) should say.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text} (SessionRejectReason {}, RefTagID {ref_tag_id:?}, RefMsgType {ref_msg_type:?})", .reason.code())]
pub struct Reject {
    /// SessionRejectReason (373).
    pub reason: SessionRejectReason,
    /// RefTagID (371): the offending tag (negative when written so), if any.
    pub ref_tag_id: Option<i64>,
    /// RefMsgType (372): the rejected message's MsgType.
    pub ref_msg_type: String,
    /// RefSeqNum (45): the rejected message's MsgSeqNum, when it has a valid one.
    pub ref_seq_num: Option<u64>,
    /// Text (58), as QuickFIX words it.
    pub text: &'static str,
}

impl Reject {
    /// Returns a reject with `reason`'s QuickFIX text.
    #[must_use]
    pub fn new(
        reason: SessionRejectReason,
        ref_tag_id: Option<i64>,
        ref_msg_type: &[u8],
        ref_seq_num: Option<u64>,
    ) -> Self {
        Self {
            reason,
            ref_tag_id,
            ref_msg_type: String::from_utf8_lossy(ref_msg_type).into_owned(),
            ref_seq_num,
            text: reason.text(),
        }
    }

    /// Returns whether a Reject for `begin_string` carries SessionRejectReason (373):
    /// not before FIX.4.2, and for FIX.4.2 only reasons up to 11 (QuickFIX's rule).
    #[must_use]
    pub fn includes_reason(&self, begin_string: &[u8]) -> bool {
        if begin_string < &b"FIX.4.2"[..] {
            false
        } else if begin_string == b"FIX.4.2" {
            self.reason.code() <= 11
        } else {
            true
        }
    }

    /// Returns whether a Reject for `begin_string` carries RefTagID (371) and RefMsgType
    /// (372): from FIX.4.2 on.
    #[must_use]
    pub fn includes_ref_fields(begin_string: &[u8]) -> bool {
        begin_string >= &b"FIX.4.2"[..]
    }

    /// Returns the Text (58) for `begin_string`: the reason's text, followed before
    /// FIX.4.2 by the tag in parentheses (there is no RefTagID then).
    #[must_use]
    pub fn text_for(&self, begin_string: &[u8]) -> String {
        match self.ref_tag_id {
            Some(tag) if !Self::includes_ref_fields(begin_string) => {
                format!("{} ({tag})", self.text)
            }
            _ => self.text.to_owned(),
        }
    }
}

/// What a dictionary says about a MsgType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgTypeStatus {
    /// A session-level message of the session dictionary.
    Admin,
    /// An application message defined in the dictionaries: the application decides
    /// whether it supports it (BusinessMessageReject 380=3 if not).
    Application,
    /// Not defined: Reject with SessionRejectReason 11.
    Undefined,
}

/// Switches of the validation, named after QuickFIX's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationOptions {
    /// Reject header fields after the body and body fields after the trailer (14).
    /// QuickFIX `ValidateFieldsOutOfOrder`, default true.
    pub check_fields_out_of_order: bool,
    /// Reject empty values (4). QuickFIX `ValidateFieldsHaveValues`, default true.
    pub check_fields_have_values: bool,
    /// Check tags >= 5000 like others. QuickFIX `ValidateUserDefinedFields`, default true.
    pub check_user_defined_fields: bool,
    /// Accept unknown tags < 5000 and tags not defined for the message type. QuickFIX
    /// `AllowUnknownMsgFields`, default false.
    pub allow_unknown_message_fields: bool,
    /// Check required fields in the entries of optional groups too (FIX semantics,
    /// default true); QuickFIX only checks entries of groups marked required.
    pub check_required_in_optional_groups: bool,
    /// Reject group entries whose members are out of dictionary order (15). Default
    /// false, as in QuickFIX; the delimiter must come first either way.
    pub check_group_member_order: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            check_fields_out_of_order: true,
            check_fields_have_values: true,
            check_user_defined_fields: true,
            allow_unknown_message_fields: false,
            check_required_in_optional_groups: true,
            check_group_member_order: false,
        }
    }
}

/// The first tag number of user-defined fields.
const USER_MIN: i64 = 5000;

/// Validates messages against a session dictionary and an application dictionary
/// (the same one for FIX 4.x).
#[derive(Debug, Clone, Copy)]
pub struct Validator<'d> {
    session: &'d Dictionary,
    application: &'d Dictionary,
    options: ValidationOptions,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Header,
    Trailer,
    Body,
    Entry,
}

impl<'d> Validator<'d> {
    /// Returns a validator for FIX 4.x: one dictionary for everything.
    #[must_use]
    pub fn new(dictionary: &'d Dictionary) -> Self {
        Self {
            session: dictionary,
            application: dictionary,
            options: ValidationOptions::default(),
        }
    }

    /// Returns a validator for FIXT: `session` (FIXT 1.1) for the header, trailer and
    /// admin messages, `application` (FIX 5.x) for application bodies.
    #[must_use]
    pub fn fixt(session: &'d Dictionary, application: &'d Dictionary) -> Self {
        Self {
            session,
            application,
            options: ValidationOptions::default(),
        }
    }

    /// Returns the validator with other options.
    #[must_use]
    pub fn with_options(mut self, options: ValidationOptions) -> Self {
        self.options = options;
        self
    }

    /// Returns the options.
    #[must_use]
    pub fn options(&self) -> &ValidationOptions {
        &self.options
    }

    /// Returns parse options with the validator's dictionaries.
    #[must_use]
    pub fn parse_options(&self) -> ParseOptions<'d> {
        ParseOptions::fixt(self.session, self.application)
    }

    /// Parses `buf` with the validator's dictionaries (groups laid out).
    ///
    /// # Errors
    /// [`ParseError`] for a garbled message.
    pub fn parse<'a>(&self, buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Message::parse_with_options(buf, &self.parse_options())
    }

    /// As [`Self::parse`], into recycled `storage` (see [`Message::into_storage`]).
    ///
    /// # Errors
    /// As [`Self::parse`].
    pub fn parse_reusing<'a>(
        &self,
        buf: &'a [u8],
        storage: MessageStorage,
    ) -> Result<Message<'a>, ParseError> {
        Message::parse_reusing(buf, &self.parse_options(), storage)
    }

    /// Says whether `msg_type` is an admin message, an application message, or not
    /// defined in the dictionaries.
    #[must_use]
    pub fn msg_type_status(&self, msg_type: &[u8]) -> MsgTypeStatus {
        if self.session.is_admin(msg_type) {
            MsgTypeStatus::Admin
        } else if self.session.message(msg_type).is_some()
            || self.application.message(msg_type).is_some()
        {
            MsgTypeStatus::Application
        } else {
            MsgTypeStatus::Undefined
        }
    }

    /// Validates `msg`, returning the first problem found, QuickFIX's way.
    ///
    /// `msg` should come from [`Validator::parse`] (or be parsed with the same
    /// dictionaries); a message parsed without a dictionary is laid out first.
    ///
    /// # Errors
    /// The [`Reject`] describing the first problem.
    pub fn validate(&self, msg: &Message<'_>) -> Result<(), Reject> {
        if msg.has_group_layout() {
            self.check(msg, true)
        } else {
            let mut copy = msg.clone();
            copy.apply_dictionaries(&self.parse_options());
            self.check(&copy, true)
        }
    }

    /// Validates `msg`; with `wire_order_first` the top-level fields are first checked
    /// without sorting (the outcome is the same either way).
    fn check(&self, msg: &Message<'_>, wire_order_first: bool) -> Result<(), Reject> {
        let msg_type = msg.msg_type();
        let reject = |reason: SessionRejectReason, tag: Option<i64>| {
            Reject::new(reason, tag, msg_type, msg.msg_seq_num().ok())
        };
        if self.options.check_fields_out_of_order {
            if let Some(tag) = msg.out_of_order_tag() {
                return Err(reject(
                    SessionRejectReason::TagSpecifiedOutOfRequiredOrder,
                    Some(i64::from(tag)),
                ));
            }
        }
        let (body_dict, def) = match self
            .session
            .message(msg_type)
            .map(|m| (self.session, m))
            .or_else(|| {
                self.application
                    .message(msg_type)
                    .map(|m| (self.application, m))
            }) {
            Some(found) => found,
            None => return Err(reject(SessionRejectReason::InvalidMsgType, None)),
        };
        if let Some(tag) = msg.group_order_error() {
            return Err(reject(
                SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
                Some(i64::from(tag)),
            ));
        }

        // Required fields (a tag's section follows from the tag, so presence at the top
        // level is enough; small tags go through a bitset).
        let fields = msg.fields();
        let mut small = [0u64; 64];
        // Whether a top-level tag repeats, is negative or too large for the bitset:
        // then only the sorted pass below tells which problem QuickFIX reports first.
        let mut unusual = false;
        for f in fields.iter().filter(|f| f.depth() == 0) {
            match small.get_mut(f.tag() as usize / 64) {
                Some(word) if !f.is_negative() => {
                    let bit = 1 << (f.tag() % 64);
                    unusual |= *word & bit != 0;
                    *word |= bit;
                }
                _ => unusual = true,
            }
        }
        let present = |tag: u32, section: Section| match small.get(tag as usize / 64) {
            Some(word) => word >> (tag % 64) & 1 != 0,
            None => fields.iter().any(|f| {
                f.tag() == tag && f.section() == section && f.depth() == 0 && !f.is_negative()
            }),
        };
        let required = [
            (self.session.header(), Section::Header),
            (self.session.trailer(), Section::Trailer),
            (&def.block, Section::Body),
        ];
        for (block, section) in required {
            if let Some(&tag) = block
                .required_tags()
                .iter()
                .find(|&&t| !present(t, section))
            {
                return Err(reject(
                    SessionRejectReason::RequiredTagMissing,
                    Some(i64::from(tag)),
                ));
            }
        }
        for (index, rec) in msg.group_records().iter().enumerate() {
            if rec.parent_start != u32::MAX {
                continue;
            }
            let dict = match fields.get(rec.count_idx as usize).map(FieldRef::section) {
                Some(Section::Body) => body_dict,
                _ => self.session,
            };
            self.check_group_required(msg, dict, index).map_err(|tag| {
                reject(
                    SessionRejectReason::RequiredTagMissing,
                    Some(i64::from(tag)),
                )
            })?;
        }

        // Every field. Most messages are valid, so the top-level fields are first
        // checked in wire order, which needs no sorting; only when that finds a problem
        // (or cannot rule one out) are they checked again in QuickFIX's order, to
        // report the problem QuickFIX would report first.
        let top_level_pass =
            wire_order_first && !unusual && self.top_level_fields_pass(msg, body_dict, &def.block);
        if top_level_pass && msg.group_records().is_empty() {
            return Ok(());
        }
        let mut scratch: Vec<u32> = Vec::with_capacity(fields.len());
        let mut keys: Vec<u64> = Vec::with_capacity(fields.len());
        let levels = [
            (Level::Header, self.session, self.session.header()),
            (Level::Trailer, self.session, self.session.trailer()),
            (Level::Body, body_dict, &def.block),
        ];
        if !top_level_pass {
            for (level, dict, block) in levels {
                let section = match level {
                    Level::Header => Section::Header,
                    Level::Trailer => Section::Trailer,
                    _ => Section::Body,
                };
                scratch.clear();
                scratch.extend(
                    fields
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.section() == section && f.depth() == 0)
                        .map(|(i, _)| i as u32),
                );
                self.check_fields(msg, dict, block, level, &mut scratch, &mut keys)
                    .map_err(|(reason, tag)| reject(reason, Some(tag)))?;
            }
        }
        let mut top: Vec<usize> = msg
            .group_records()
            .iter()
            .enumerate()
            .filter(|(_, g)| g.parent_start == u32::MAX)
            .map(|(i, _)| i)
            .collect();
        top.sort_by_key(|&i| msg.group_records().get(i).map_or(0, |g| g.count_tag));
        for index in top {
            let dict = match msg
                .group_records()
                .get(index)
                .and_then(|g| fields.get(g.count_idx as usize))
                .map(FieldRef::section)
            {
                Some(Section::Body) => body_dict,
                _ => self.session,
            };
            self.check_group_fields(msg, dict, index, wire_order_first, &mut scratch, &mut keys)
                .map_err(|(reason, tag)| reject(reason, Some(tag)))?;
        }
        Ok(())
    }

    /// Checks the required members of every entry of group record `index` and of the
    /// groups nested in them; returns the missing tag.
    fn check_group_required(
        &self,
        msg: &Message<'_>,
        dict: &Dictionary,
        index: usize,
    ) -> Result<(), u32> {
        let Some(rec) = msg.group_records().get(index) else {
            return Ok(());
        };
        let Some(def) = dict.group(rec.def) else {
            return Ok(());
        };
        let fields = msg.fields();
        let entries = msg
            .entry_records()
            .get(rec.first_entry as usize..(rec.first_entry + rec.n_entries) as usize)
            .unwrap_or_default();
        for entry in entries {
            let own = fields
                .get(entry.start as usize..entry.end as usize)
                .unwrap_or_default();
            if def.required || self.options.check_required_in_optional_groups {
                if let Some(&tag) = def.block.required_tags().iter().find(|&&t| {
                    !own.iter()
                        .any(|f| f.tag() == t && f.depth() == rec.depth && !f.is_negative())
                }) {
                    return Err(tag);
                }
            }
            for (nested, g) in msg.group_records().iter().enumerate() {
                if g.parent_start == entry.start {
                    self.check_group_required(msg, dict, nested)?;
                }
            }
        }
        Ok(())
    }

    /// Checks the fields of every entry of group record `index`, then nested groups.
    fn check_group_fields(
        &self,
        msg: &Message<'_>,
        dict: &Dictionary,
        index: usize,
        wire_order_first: bool,
        scratch: &mut Vec<u32>,
        keys: &mut Vec<u64>,
    ) -> Result<(), (SessionRejectReason, i64)> {
        let Some(rec) = msg.group_records().get(index).copied() else {
            return Ok(());
        };
        let Some(def) = dict.group(rec.def) else {
            return Ok(());
        };
        let fields = msg.fields();
        let entries = msg
            .entry_records()
            .get(rec.first_entry as usize..(rec.first_entry + rec.n_entries) as usize)
            .unwrap_or_default();
        for entry in entries {
            scratch.clear();
            scratch.extend((entry.start..entry.end).filter(|&i| {
                fields
                    .get(i as usize)
                    .is_some_and(|f| f.depth() == rec.depth)
            }));
            if self.options.check_group_member_order {
                let mut last = 0;
                for &i in scratch.iter() {
                    let Some(f) = fields.get(i as usize) else {
                        continue;
                    };
                    let position = def.block.position(f.tag()).unwrap_or(0);
                    if position < last {
                        return Err((
                            SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
                            f.signed_tag(),
                        ));
                    }
                    last = position;
                }
            }
            let passes_in_wire_order =
                wire_order_first && self.entry_fields_pass(msg, dict, &def.block, scratch);
            if !passes_in_wire_order {
                self.check_fields(msg, dict, &def.block, Level::Entry, scratch, keys)?;
            }
            let mut nested: Vec<usize> = msg
                .group_records()
                .iter()
                .enumerate()
                .filter(|(_, g)| g.parent_start == entry.start)
                .map(|(i, _)| i)
                .collect();
            nested.sort_by_key(|&i| msg.group_records().get(i).map_or(0, |g| g.count_tag));
            for i in nested {
                self.check_group_fields(msg, dict, i, wire_order_first, scratch, keys)?;
            }
        }
        Ok(())
    }

    /// Runs the checks of [`Self::check_fields`] on every top-level field in wire
    /// order; returns whether all pass. The caller has ruled out repeated, negative
    /// and large tags, so passing here means the sorted pass would find nothing.
    fn top_level_fields_pass(
        &self,
        msg: &Message<'_>,
        body_dict: &Dictionary,
        body: &Block,
    ) -> bool {
        for (i, f) in msg.fields().iter().enumerate() {
            if f.depth() != 0 {
                continue;
            }
            let (dict, block) = match f.section() {
                Section::Body => (body_dict, Some(body)),
                _ => (self.session, None),
            };
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            if self.field_problem(msg, dict, block, f, index).is_some() {
                return false;
            }
        }
        true
    }

    /// As [`Self::top_level_fields_pass`] for the fields `indices` of one group
    /// entry: whether an entry of a few distinct tags passes in wire order, so that
    /// it needs no sorted pass. (The layout opens a new entry at a repeated tag, so
    /// a repeat is not expected here; checked anyway.)
    fn entry_fields_pass(
        &self,
        msg: &Message<'_>,
        dict: &Dictionary,
        block: &Block,
        indices: &[u32],
    ) -> bool {
        if indices.len() > 16 {
            return false;
        }
        let fields = msg.fields();
        for (k, &i) in indices.iter().enumerate() {
            let Some(f) = fields.get(i as usize) else {
                return false;
            };
            let repeated = indices
                .get(..k)
                .unwrap_or_default()
                .iter()
                .any(|&j| fields.get(j as usize).is_some_and(|g| g.tag() == f.tag()));
            if f.is_negative()
                || repeated
                || self.field_problem(msg, dict, Some(block), f, i).is_some()
            {
                return false;
            }
        }
        true
    }

    /// The problem with field `f` (at `index` in the message) on its own, if any: an
    /// empty value, an unknown tag, a bad format or value, a tag not in `block` (given
    /// for body fields and group entries) or a wrong NumInGroup count.
    #[inline]
    fn field_problem(
        &self,
        msg: &Message<'_>,
        dict: &Dictionary,
        block: Option<&Block>,
        f: &FieldRef,
        index: u32,
    ) -> Option<SessionRejectReason> {
        let tag = f.signed_tag();
        let value = msg.value(f);
        if self.options.check_fields_have_values && value.is_empty() {
            return Some(SessionRejectReason::TagSpecifiedWithoutValue);
        }
        // One load tells whether the tag is defined, whether its value needs the
        // definition (most strings do not) and whether it counts a group.
        let flags = if f.is_negative() {
            0
        } else {
            dict.flags(f.tag())
        };
        if flags & FLAG_CHECKED_VALUE != 0 {
            if let Some(def) = dict.field(f.tag()) {
                if !has_valid_format(def.field_type, value) {
                    return Some(SessionRejectReason::IncorrectDataFormat);
                }
                if !def.is_valid_value(value) {
                    return Some(SessionRejectReason::ValueIsIncorrect);
                }
            }
        }
        let should_check = if tag < USER_MIN {
            !self.options.allow_unknown_message_fields
        } else {
            self.options.check_user_defined_fields
        };
        if should_check && flags & FLAG_DEFINED == 0 {
            return Some(SessionRejectReason::InvalidTagNumber);
        }
        if let Some(block) = block {
            if should_check && !block.contains(f.tag()) {
                return Some(SessionRejectReason::TagNotDefinedForMessageType);
            }
            if flags & FLAG_GROUP_COUNT != 0 && block.group_id(f.tag()).is_some() {
                let found = msg
                    .group_records()
                    .iter()
                    .find(|g| g.count_idx == index)
                    .map_or(0, |g| g.n_entries);
                if parse_int(value) != Some(i64::from(found)) {
                    return Some(SessionRejectReason::IncorrectNumInGroupCount);
                }
            }
        }
        None
    }

    /// Checks the fields `indices` (of one level) in QuickFIX's order.
    fn check_fields(
        &self,
        msg: &Message<'_>,
        dict: &Dictionary,
        block: &Block,
        level: Level,
        indices: &mut [u32],
        keys: &mut Vec<u64>,
    ) -> Result<(), (SessionRejectReason, i64)> {
        let fields = msg.fields();
        // Sort by (rank, tag, wire position), packed into one integer per field.
        keys.clear();
        keys.resize(indices.len(), 0);
        for (key, &i) in keys.iter_mut().zip(indices.iter()) {
            let tag = fields.get(i as usize).map_or(0, FieldRef::signed_tag);
            let rank: u64 = match (level, tag) {
                (Level::Header, 8) => 0,
                (Level::Header, 9) => 1,
                (Level::Header, 35) => 2,
                (Level::Trailer, 10) => 4,
                _ => 3,
            };
            let biased = (tag + (1 << 32)) as u64;
            *key = rank << 60 | biased << 24 | u64::from(i);
        }
        keys.sort_unstable();
        for (slot, key) in indices.iter_mut().zip(keys.iter()) {
            *slot = (key & 0xFF_FFFF) as u32;
        }
        let mut previous: Option<i64> = None;
        for &i in indices.iter() {
            let Some(f) = fields.get(i as usize) else {
                continue;
            };
            let tag = f.signed_tag();
            if previous == Some(tag) {
                return Err((SessionRejectReason::TagAppearsMoreThanOnce, tag));
            }
            previous = Some(tag);
            let block = matches!(level, Level::Body | Level::Entry).then_some(block);
            if let Some(reason) = self.field_problem(msg, dict, block, f, i) {
                return Err((reason, tag));
            }
        }
        Ok(())
    }
}

/// Returns whether `value` has the syntax of `field_type` (QuickFIX's convertors;
/// types without a fixed syntax always pass).
#[must_use]
pub fn has_valid_format(field_type: FieldType, value: &[u8]) -> bool {
    match field_type {
        FieldType::Int | FieldType::DayOfMonth => parse_int(value).is_some(),
        FieldType::Length | FieldType::NumInGroup | FieldType::SeqNum | FieldType::TagNum => {
            parse_u64(value).is_some()
        }
        FieldType::Price
        | FieldType::Amt
        | FieldType::Qty
        | FieldType::Float
        | FieldType::PriceOffset
        | FieldType::Percentage => is_float(value),
        FieldType::Char => value.len() == 1,
        FieldType::Boolean => parse_bool(value).is_some(),
        FieldType::UtcTimestamp => is_utc_timestamp(value),
        FieldType::UtcTimeOnly => is_utc_time_only(value),
        FieldType::UtcDate | FieldType::UtcDateOnly => is_utc_date(value),
        _ => true,
    }
}

/// Validates `msg` against one dictionary (FIX 4.x) with default options.
///
/// # Errors
/// The [`Reject`] describing the first problem.
pub fn validate(dictionary: &Dictionary, msg: &Message<'_>) -> Result<(), Reject> {
    Validator::new(dictionary).validate(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{FieldAccess, MessageBuilder};

    const DICT: &str = r"<fix type='FIX' major='4' minor='4' servicepack='0'>
 <header>
  <field name='BeginString' required='Y' />
  <field name='BodyLength' required='Y' />
  <field name='MsgType' required='Y' />
  <field name='SenderCompID' required='Y' />
  <field name='TargetCompID' required='Y' />
  <field name='MsgSeqNum' required='Y' />
  <field name='SendingTime' required='Y' />
  <field name='PossDupFlag' required='N' />
 </header>
 <trailer>
  <field name='CheckSum' required='Y' />
 </trailer>
 <messages>
  <message name='Heartbeat' msgtype='0' msgcat='admin'>
   <field name='TestReqID' required='N' />
  </message>
  <message name='NewOrderSingle' msgtype='D' msgcat='app'>
   <field name='ClOrdID' required='Y' />
   <component name='Parties' required='N' />
   <group name='NoTradingSessions' required='N'>
    <field name='TradingSessionID' required='N' />
    <field name='TradingSessionSubID' required='N' />
   </group>
   <field name='Side' required='Y' />
   <field name='TransactTime' required='Y' />
   <field name='OrderQty' required='N' />
   <field name='OrdType' required='Y' />
   <field name='Price' required='N' />
   <field name='ExecInst' required='N' />
   <field name='Symbol' required='N' />
  </message>
 </messages>
 <components>
  <component name='Parties'>
   <group name='NoPartyIDs' required='N'>
    <field name='PartyID' required='N' />
    <field name='PartyRole' required='Y' />
    <group name='NoPartySubIDs' required='N'>
     <field name='PartySubID' required='N' />
     <field name='PartySubIDType' required='N' />
    </group>
   </group>
  </component>
 </components>
 <fields>
  <field number='8' name='BeginString' type='STRING' />
  <field number='9' name='BodyLength' type='LENGTH' />
  <field number='10' name='CheckSum' type='STRING' />
  <field number='11' name='ClOrdID' type='STRING' />
  <field number='18' name='ExecInst' type='MULTIPLEVALUESTRING'>
   <value enum='1' description='NOT_HELD' />
   <value enum='G' description='ALL_OR_NONE' />
  </field>
  <field number='34' name='MsgSeqNum' type='SEQNUM' />
  <field number='35' name='MsgType' type='STRING' />
  <field number='38' name='OrderQty' type='QTY' />
  <field number='40' name='OrdType' type='CHAR'>
   <value enum='1' description='MARKET' />
   <value enum='2' description='LIMIT' />
  </field>
  <field number='43' name='PossDupFlag' type='BOOLEAN' />
  <field number='44' name='Price' type='PRICE' />
  <field number='49' name='SenderCompID' type='STRING' />
  <field number='52' name='SendingTime' type='UTCTIMESTAMP' />
  <field number='54' name='Side' type='CHAR'>
   <value enum='1' description='BUY' />
   <value enum='2' description='SELL' />
  </field>
  <field number='55' name='Symbol' type='STRING' />
  <field number='56' name='TargetCompID' type='STRING' />
  <field number='60' name='TransactTime' type='UTCTIMESTAMP' />
  <field number='112' name='TestReqID' type='STRING' />
  <field number='336' name='TradingSessionID' type='STRING' />
  <field number='386' name='NoTradingSessions' type='NUMINGROUP' />
  <field number='448' name='PartyID' type='STRING' />
  <field number='452' name='PartyRole' type='INT' />
  <field number='453' name='NoPartyIDs' type='NUMINGROUP' />
  <field number='523' name='PartySubID' type='STRING' />
  <field number='625' name='TradingSessionSubID' type='STRING' />
  <field number='802' name='NoPartySubIDs' type='NUMINGROUP' />
  <field number='803' name='PartySubIDType' type='INT' />
 </fields>
</fix>";

    fn dict() -> Dictionary {
        Dictionary::from_xml(DICT, "test.xml").expect("test dictionary")
    }

    pub(super) fn dict_for_properties() -> Dictionary {
        dict()
    }

    pub(super) fn order_for_properties() -> Vec<u8> {
        let body =
            format!("{ORDER}453=2|448=A|452=1|802=1|523=X|803=2|448=B|452=3|386=1|336=PRE|18=1 G|");
        msg("D", HEADER, &body)
    }

    const HEADER: &str = "34=2|49=TW|52=20250101-00:00:00|56=ISLD|";

    pub(super) fn msg(msg_type: &str, header: &str, body: &str) -> Vec<u8> {
        let text = format!("35={msg_type}|{header}{body}");
        crate::frame::encode("FIX.4.4", text.replace('|', "\u{1}").as_bytes())
    }

    type Outcome = (u32, Option<i64>, &'static str);

    fn check(bytes: &[u8]) -> Result<(), Outcome> {
        let d = dict();
        let v = Validator::new(&d);
        let m = v.parse(bytes).expect("parses");
        v.validate(&m)
            .map_err(|r| (r.reason.code(), r.ref_tag_id, r.text))
    }

    const ORDER: &str = "11=ID|54=1|60=20250101-00:00:00|40=2|44=1.5|";

    #[test]
    fn lookups_skip_group_members_for_the_top_level_field() {
        // 448 first occurs inside the Parties group (nested 523 too), then at the
        // top level: `get` answers the top-level one, the entries their own.
        let body =
            format!("{ORDER}453=2|448=A|452=1|802=1|523=X|803=2|448=B|452=3|523=TOP|448=TOP|");
        let bytes = msg("D", HEADER, &body);
        let d = dict();
        let m = Message::parse_with(&bytes, &d).expect("parses");
        assert_eq!(m.get(448), Some(&b"TOP"[..]));
        assert_eq!(m.get(523), Some(&b"TOP"[..]));
        assert_eq!(m.get(452), None);
        let parties = m.group(453).expect("laid out");
        let ids: Vec<_> = parties.entries().map(|e| e.get_str(448).ok()).collect();
        assert_eq!(ids, [Some("A"), Some("B")]);
    }

    #[test]
    fn types_without_syntax_accept_anything() {
        // The validator skips the definition of a field whose type has no syntax and
        // that has no enumerated values: has_syntax must say which types those are.
        let names = [
            "STRING",
            "CHAR",
            "PRICE",
            "INT",
            "AMT",
            "QTY",
            "CURRENCY",
            "MULTIPLEVALUESTRING",
            "MULTIPLESTRINGVALUE",
            "MULTIPLECHARVALUE",
            "EXCHANGE",
            "UTCTIMESTAMP",
            "TIME",
            "BOOLEAN",
            "LOCALMKTDATE",
            "LOCALMKTTIME",
            "DATA",
            "XMLDATA",
            "FLOAT",
            "PRICEOFFSET",
            "MONTHYEAR",
            "DAYOFMONTH",
            "UTCDATE",
            "UTCDATEONLY",
            "UTCTIMEONLY",
            "TZTIMEONLY",
            "TZTIMESTAMP",
            "NUMINGROUP",
            "PERCENTAGE",
            "SEQNUM",
            "TAGNUM",
            "LENGTH",
            "COUNTRY",
            "LANGUAGE",
            "XID",
            "XIDREF",
            "SOMETHINGELSE",
        ];
        let mut with_syntax = 0;
        for name in names {
            let t = FieldType::from_xml(name);
            let garbage_passes = has_valid_format(t, b"not a value of any type");
            assert_eq!(garbage_passes, !t.has_syntax(), "{name}");
            with_syntax += usize::from(t.has_syntax());
        }
        assert_eq!(with_syntax, 19); // 18 types, and TIME (a UTCTIMESTAMP)
    }

    #[test]
    fn valid_messages_pass() {
        assert_eq!(check(&msg("0", HEADER, "")), Ok(()));
        assert_eq!(check(&msg("D", HEADER, ORDER)), Ok(()));
        let with_groups =
            format!("{ORDER}453=2|448=A|452=1|802=1|523=X|803=2|448=B|452=3|386=1|336=PRE|18=1 G|");
        assert_eq!(check(&msg("D", HEADER, &with_groups)), Ok(()));
        assert_eq!(check(&msg("D", HEADER, &format!("{ORDER}386=0|"))), Ok(()));
    }

    #[test]
    fn each_reason() {
        let cases: Vec<(Vec<u8>, Outcome)> = vec![
            (
                msg("0", HEADER, "999=HI|"),
                (0, Some(999), "Invalid tag number"),
            ),
            (
                msg("0", HEADER, "-1=HI|"),
                (0, Some(-1), "Invalid tag number"),
            ),
            (
                msg("0", HEADER, "0=HI|"),
                (0, Some(0), "Invalid tag number"),
            ),
            (
                msg("0", "34=2|49=TW|52=20250101-00:00:00|", ""),
                (1, Some(56), "Required tag missing"),
            ),
            (
                msg("D", HEADER, "54=1|60=20250101-00:00:00|40=2|"),
                (1, Some(11), "Required tag missing"),
            ),
            (
                msg("0", HEADER, "55=MSFT|"),
                (2, Some(55), "Tag not defined for this message type"),
            ),
            (
                msg("0", "34=2|49=TW|52=20250101-00:00:00|56=|", ""),
                (4, Some(56), "Tag specified without a value"),
            ),
            (
                msg("D", HEADER, "11=ID|54=4|60=20250101-00:00:00|40=2|"),
                (
                    5,
                    Some(54),
                    "Value is incorrect (out of range) for this tag",
                ),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}18=1 X|")),
                (
                    5,
                    Some(18),
                    "Value is incorrect (out of range) for this tag",
                ),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}38=+200.00|")),
                (6, Some(38), "Incorrect data format for value"),
            ),
            (
                msg("D", HEADER, "11=ID|54=1|60=2025-01-01|40=2|"),
                (6, Some(60), "Incorrect data format for value"),
            ),
            (
                msg("D", HEADER, "11=ID|54=12|60=20250101-00:00:00|40=2|"),
                (6, Some(54), "Incorrect data format for value"),
            ),
            (
                msg("0", &format!("{HEADER}43=X|"), ""),
                (6, Some(43), "Incorrect data format for value"),
            ),
            (msg("*", HEADER, ""), (11, None, "Invalid MsgType")),
            (
                msg("D", HEADER, &format!("{ORDER}40=1|")),
                (13, Some(40), "Tag appears more than once"),
            ),
            (
                msg("D", "", &format!("{ORDER}{HEADER}")),
                (14, Some(34), "Tag specified out of required order"),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}386=2|625=A|336=B|")),
                (15, Some(625), "Repeating group fields out of order"),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}386=3|336=PRE|336=POST|")),
                (
                    16,
                    Some(386),
                    "Incorrect NumInGroup count for repeating group",
                ),
            ),
            (
                msg(
                    "D",
                    HEADER,
                    &format!("{ORDER}453=1|448=A|452=1|802=2|523=X|"),
                ),
                (
                    16,
                    Some(802),
                    "Incorrect NumInGroup count for repeating group",
                ),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}453=1|448=A|")),
                (1, Some(452), "Required tag missing"),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}453=1|448=A|452=x|")),
                (6, Some(452), "Incorrect data format for value"),
            ),
            (
                msg("D", HEADER, &format!("{ORDER}336=PRE|")),
                (2, Some(336), "Tag not defined for this message type"),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                check(&bytes),
                Err(expected),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn options_change_the_outcome() {
        let d = dict();
        let relaxed = Validator::new(&d).with_options(ValidationOptions {
            allow_unknown_message_fields: true,
            check_fields_have_values: false,
            check_fields_out_of_order: false,
            check_required_in_optional_groups: false,
            ..ValidationOptions::default()
        });
        for body in ["999=HI|", "55=MSFT|"] {
            let bytes = msg("0", HEADER, body);
            let m = relaxed.parse(&bytes).expect("parses");
            assert_eq!(relaxed.validate(&m), Ok(()));
        }
        let bytes = msg("D", HEADER, &format!("{ORDER}453=1|448=A|"));
        let m = relaxed.parse(&bytes).expect("parses");
        assert_eq!(relaxed.validate(&m), Ok(()));
        let user = Validator::new(&d).with_options(ValidationOptions {
            check_user_defined_fields: false,
            ..ValidationOptions::default()
        });
        let bytes = msg("0", HEADER, "5000=HI|");
        let m = user.parse(&bytes).expect("parses");
        assert_eq!(user.validate(&m), Ok(()));
        let ordered = Validator::new(&d).with_options(ValidationOptions {
            check_group_member_order: true,
            ..ValidationOptions::default()
        });
        let bytes = msg(
            "D",
            HEADER,
            &format!("{ORDER}453=1|448=A|802=1|523=X|452=1|"),
        );
        let m = ordered.parse(&bytes).expect("parses");
        assert_eq!(
            ordered.validate(&m).map_err(|r| (r.reason, r.ref_tag_id)),
            Err((
                SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
                Some(452)
            ))
        );
        assert_eq!(Validator::new(&d).validate(&m), Ok(()));
    }

    #[test]
    fn groups_are_reachable_after_validation() {
        let d = dict();
        let body = format!("{ORDER}453=2|448=A|452=1|802=1|523=X|803=2|448=B|452=3|");
        let bytes = msg("D", HEADER, &body);
        let m = Validator::new(&d).parse(&bytes).expect("parses");
        let parties = m.group(453).expect("parties");
        assert_eq!(parties.len(), 2);
        assert_eq!(parties.declared_count(), Some(2));
        let first = parties.entry(0).expect("entry");
        assert_eq!(first.get_str(448), Ok("A"));
        assert_eq!(first.get_int(452), Ok(1));
        let subs = first.group(802).expect("sub ids");
        assert_eq!(subs.entry(0).and_then(|e| e.raw(803)), Some(&b"2"[..]));
        assert_eq!(parties.entry(1).and_then(|e| e.raw(448)), Some(&b"B"[..]));
        assert!(parties.entry(1).and_then(|e| e.group(802)).is_none());
        // Group members are not top-level fields.
        assert_eq!(m.get(448), None);
        assert_eq!(m.groups().count(), 1);
        // A dictionary-less parse is laid out on validation.
        let plain = Message::parse(&bytes).expect("parses");
        assert_eq!(validate(&d, &plain), Ok(()));
    }

    #[test]
    fn reject_fields_per_version() {
        let r = Reject::new(
            SessionRejectReason::TagAppearsMoreThanOnce,
            Some(40),
            b"D",
            Some(2),
        );
        assert!(!r.includes_reason(b"FIX.4.2"));
        assert!(r.includes_reason(b"FIX.4.4"));
        assert!(r.includes_reason(b"FIXT.1.1"));
        assert!(!r.includes_reason(b"FIX.4.1"));
        let r11 = Reject::new(SessionRejectReason::InvalidMsgType, None, b"*", Some(2));
        assert!(r11.includes_reason(b"FIX.4.2"));
        assert!(Reject::includes_ref_fields(b"FIX.4.2"));
        assert!(!Reject::includes_ref_fields(b"FIX.4.0"));
        assert_eq!(r.text_for(b"FIX.4.4"), "Tag appears more than once");
        assert_eq!(r.text_for(b"FIX.4.1"), "Tag appears more than once (40)");
        assert_eq!(r.to_string(), "Tag appears more than once (SessionRejectReason 13, RefTagID Some(40), RefMsgType \"D\")");
        for code in (0..=18).chain([99]) {
            let reason = SessionRejectReason::from_code(code).expect("known code");
            assert_eq!(reason.code(), code);
            assert!(!reason.text().is_empty());
        }
        assert_eq!(SessionRejectReason::from_code(42), None);
    }

    #[test]
    fn msg_type_status() {
        let d = dict();
        let v = Validator::new(&d);
        assert_eq!(v.msg_type_status(b"0"), MsgTypeStatus::Admin);
        assert_eq!(v.msg_type_status(b"D"), MsgTypeStatus::Application);
        assert_eq!(v.msg_type_status(b"*"), MsgTypeStatus::Undefined);
    }

    #[test]
    fn built_messages_validate() {
        let d = dict();
        let mut b = MessageBuilder::new("FIX.4.4", "D");
        b.sender_comp_id("TW")
            .target_comp_id("ISLD")
            .msg_seq_num(9)
            .sending_time(
                1_735_689_600_000_000_000,
                crate::message::TimestampPrecision::Millis,
            )
            .field_str(11, "ID")
            .field_u64(453, 1)
            .field_str(448, "P")
            .field_int(452, 3)
            .field_char(54, b'2')
            .field_timestamp(
                60,
                1_735_689_600_000_000_000,
                crate::message::TimestampPrecision::Micros,
            )
            .field_char(40, b'2')
            .field_decimal(44, crate::message::Decimal::new(-5, 1));
        let bytes = b.encode();
        let v = Validator::new(&d);
        let m = v.parse(&bytes).expect("parses");
        assert_eq!(v.validate(&m), Ok(()));
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::tests::{dict_for_properties, msg, order_for_properties};
    use super::*;

    /// Values and tags the field-level mutations below draw from: each breaks some
    /// check for some field (empty, wrong type, not an enumerated value, unknown tag,
    /// a group member at the top level, a header tag in the body, user-defined, large).
    const VALUES: [&str; 8] = ["", "X", "1", "2", "-1", "1.5", "20250101-00:00:00", "1 G"];
    const TAGS: [u32; 10] = [11, 18, 34, 44, 52, 448, 453, 999, 5001, 9000];

    /// The order of [`order_for_properties`] as (tag, value) fields after the header.
    fn order_fields() -> Vec<(u32, String)> {
        let text = String::from_utf8(order_for_properties()).expect("ASCII");
        text.split('\u{1}')
            .filter_map(|f| f.split_once('='))
            .filter_map(|(t, v)| Some((t.parse::<u32>().ok()?, v.to_owned())))
            .filter(|(t, _)| !matches!(t, 8 | 9 | 10 | 35))
            .collect()
    }

    proptest! {
        // Cheap cases, and a mistake in one check of one field shows up in few of them.
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Checking the top-level fields in wire order first (the fast path of every
        /// valid message) answers exactly what the sorted pass alone answers, reason
        /// and tag included, whatever is wrong with the message.
        #[test]
        fn wire_order_pass_agrees_with_the_sorted_pass(
            edits in proptest::collection::vec((0u8..5, any::<usize>(), any::<usize>()), 0..4),
        ) {
            let d = dict_for_properties();
            let v = Validator::new(&d);
            let mut fields = order_fields();
            for (op, at, pick) in edits {
                let n = fields.len();
                let at = at % n;
                match op {
                    0 => fields[at].1 = VALUES[pick % VALUES.len()].to_owned(),
                    1 => fields[at].0 = TAGS[pick % TAGS.len()],
                    2 => {
                        let copy = fields[at].clone();
                        fields.insert(pick % (n + 1), copy);
                    }
                    3 => fields.swap(at, pick % n),
                    _ => {
                        fields.remove(at);
                        if fields.is_empty() {
                            fields.push((11, "ID".to_owned()));
                        }
                    }
                }
            }
            let body: String = fields.iter().map(|(t, v)| format!("{t}={v}|")).collect();
            let bytes = msg("D", "", &body);
            if let Ok(m) = v.parse(&bytes) {
                prop_assert_eq!(v.validate(&m), v.check(&m, false));
            }
        }
    }

    proptest! {

        #[test]
        fn validation_never_panics_on_mutated_orders(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let d = dict_for_properties();
            let v = Validator::new(&d);
            let mut bytes = order_for_properties();
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let unchecked = ParseOptions { verify_checksum: false, ..v.parse_options() };
            for candidate in [&bytes[..], &bytes[..cut % (bytes.len() + 1)]] {
                if let Ok(m) = Message::parse_with_options(candidate, &unchecked) {
                    let _ = v.validate(&m);
                    let plain = Message::parse_with_options(candidate, &ParseOptions { verify_checksum: false, ..ParseOptions::default() });
                    if let Ok(p) = plain {
                        prop_assert_eq!(v.validate(&p), v.validate(&m));
                    }
                }
            }
        }
    }
}
