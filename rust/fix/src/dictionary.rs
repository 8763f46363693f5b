//! FIX data dictionaries loaded from QuickFIX XML specs: fields, types, enums, messages, groups.
//!
//! A [`Dictionary`] is read once (from a file with [`Dictionary::from_file`] or from a
//! string with [`Dictionary::from_xml`]) and then only looked up:
//!
//! * fields by tag ([`Dictionary::field`], a vector indexed by tag) or by name;
//! * messages by MsgType ([`Dictionary::message`], a sorted table of packed keys);
//! * the header, trailer and every message as an expanded [`Block`]: components are
//!   inlined recursively, repeating groups become [`GroupDef`]s (NumInGroup tag,
//!   delimiter = first member, nested members), required flags are kept.
//!
//! A field inside a component is required only when it is marked required and every
//! component that encloses it (up to the message or group) is required too. QuickFIX
//! looks only at the innermost component; the shipped FIX 4.2/4.4/5.0SP2/FIXT 1.1 specs
//! contain no case where the two rules differ.
//!
//! For FIX 5.x, pair the application dictionary (e.g. `FIX50SP2.xml`, whose header and
//! trailer are empty) with the transport dictionary (`FIXT11.xml`).
//!
//! Errors name the file and the element at fault, e.g.
//! `FIX44.xml: <message name='NewOrderSingle'>: field 'Foo' is not defined in <fields>`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use thiserror::Error;

/// Why a data dictionary could not be loaded.
#[derive(Debug, Error)]
pub enum DictionaryError {
    /// The file could not be read.
    #[error("{file}: cannot read the data dictionary: {source}")]
    Io {
        /// The file name.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed XML.
    #[error("{file}: XML error at byte {position}: {message}")]
    Xml {
        /// The file name.
        file: String,
        /// The byte offset where the XML reader gave up.
        position: u64,
        /// The XML reader's description of the error.
        message: String,
    },
    /// The XML is well-formed but is not a valid QuickFIX data dictionary.
    #[error("{file}: <{element}>: {reason}")]
    Invalid {
        /// The file name.
        file: String,
        /// The element at fault, with its identifying attribute, e.g. `field name='Foo'`.
        element: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The data type of a field, from the `type` attribute of `<field>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `STRING`.
    String,
    /// `CHAR`: exactly one character.
    Char,
    /// `PRICE`.
    Price,
    /// `INT`.
    Int,
    /// `AMT`.
    Amt,
    /// `QTY`.
    Qty,
    /// `CURRENCY`.
    Currency,
    /// `MULTIPLEVALUESTRING`: space-separated values.
    MultipleValueString,
    /// `MULTIPLESTRINGVALUE`: space-separated values.
    MultipleStringValue,
    /// `MULTIPLECHARVALUE`: space-separated characters.
    MultipleCharValue,
    /// `EXCHANGE`.
    Exchange,
    /// `UTCTIMESTAMP` (and the obsolete `TIME`): `YYYYMMDD-HH:MM:SS[.fff]`.
    UtcTimestamp,
    /// `BOOLEAN`: `Y` or `N`.
    Boolean,
    /// `LOCALMKTDATE`.
    LocalMktDate,
    /// `LOCALMKTTIME`.
    LocalMktTime,
    /// `DATA`: raw bytes whose length is given by a `LENGTH` field.
    Data,
    /// `XMLDATA`: raw XML whose length is given by a `LENGTH` field.
    XmlData,
    /// `FLOAT`.
    Float,
    /// `PRICEOFFSET`.
    PriceOffset,
    /// `MONTHYEAR`.
    MonthYear,
    /// `DAYOFMONTH`.
    DayOfMonth,
    /// `UTCDATE`: `YYYYMMDD`.
    UtcDate,
    /// `UTCDATEONLY`: `YYYYMMDD`.
    UtcDateOnly,
    /// `UTCTIMEONLY`: `HH:MM:SS[.fff]`.
    UtcTimeOnly,
    /// `TZTIMEONLY`.
    TzTimeOnly,
    /// `TZTIMESTAMP`.
    TzTimestamp,
    /// `NUMINGROUP`: the count of a repeating group.
    NumInGroup,
    /// `PERCENTAGE`.
    Percentage,
    /// `SEQNUM`.
    SeqNum,
    /// `TAGNUM`.
    TagNum,
    /// `LENGTH`.
    Length,
    /// `COUNTRY`.
    Country,
    /// `LANGUAGE`.
    Language,
    /// `XID`.
    Xid,
    /// `XIDREF`.
    XidRef,
    /// Any other type name (kept in [`FieldDef::type_name`]); values are not checked.
    Other,
}

impl FieldType {
    /// Returns the type for a QuickFIX `type` attribute (`Other` when unknown).
    #[must_use]
    pub fn from_xml(name: &str) -> Self {
        match name {
            "STRING" => Self::String,
            "CHAR" => Self::Char,
            "PRICE" => Self::Price,
            "INT" => Self::Int,
            "AMT" => Self::Amt,
            "QTY" => Self::Qty,
            "CURRENCY" => Self::Currency,
            "MULTIPLEVALUESTRING" => Self::MultipleValueString,
            "MULTIPLESTRINGVALUE" => Self::MultipleStringValue,
            "MULTIPLECHARVALUE" => Self::MultipleCharValue,
            "EXCHANGE" => Self::Exchange,
            "UTCTIMESTAMP" | "TIME" => Self::UtcTimestamp,
            "BOOLEAN" => Self::Boolean,
            "LOCALMKTDATE" => Self::LocalMktDate,
            "LOCALMKTTIME" => Self::LocalMktTime,
            "DATA" => Self::Data,
            "XMLDATA" => Self::XmlData,
            "FLOAT" => Self::Float,
            "PRICEOFFSET" => Self::PriceOffset,
            "MONTHYEAR" => Self::MonthYear,
            "DAYOFMONTH" => Self::DayOfMonth,
            "UTCDATE" => Self::UtcDate,
            "UTCDATEONLY" => Self::UtcDateOnly,
            "UTCTIMEONLY" => Self::UtcTimeOnly,
            "TZTIMEONLY" => Self::TzTimeOnly,
            "TZTIMESTAMP" => Self::TzTimestamp,
            "NUMINGROUP" => Self::NumInGroup,
            "PERCENTAGE" => Self::Percentage,
            "SEQNUM" => Self::SeqNum,
            "TAGNUM" => Self::TagNum,
            "LENGTH" => Self::Length,
            "COUNTRY" => Self::Country,
            "LANGUAGE" => Self::Language,
            "XID" => Self::Xid,
            "XIDREF" => Self::XidRef,
            _ => Self::Other,
        }
    }

    /// Returns whether values are space-separated lists (each checked against the enum).
    #[must_use]
    pub fn is_multiple_value(self) -> bool {
        matches!(
            self,
            Self::MultipleValueString | Self::MultipleStringValue | Self::MultipleCharValue
        )
    }

    /// Returns whether values of this type have a syntax that validation checks
    /// (numbers, single characters, booleans, UTC dates and times); the others
    /// (strings, local dates, data, ...) accept any value.
    #[must_use]
    pub fn has_syntax(self) -> bool {
        matches!(
            self,
            Self::Int
                | Self::DayOfMonth
                | Self::Length
                | Self::NumInGroup
                | Self::SeqNum
                | Self::TagNum
                | Self::Price
                | Self::Amt
                | Self::Qty
                | Self::Float
                | Self::PriceOffset
                | Self::Percentage
                | Self::Char
                | Self::Boolean
                | Self::UtcTimestamp
                | Self::UtcTimeOnly
                | Self::UtcDate
                | Self::UtcDateOnly
        )
    }

    /// Returns whether values are raw data preceded by a length field.
    #[must_use]
    pub fn is_data(self) -> bool {
        matches!(self, Self::Data | Self::XmlData)
    }
}

/// One allowed value of an enumerated field (`<value enum= description=>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValue {
    /// The value as written on the wire.
    pub value: String,
    /// Its description, e.g. `BUY`.
    pub description: String,
}

/// A field definition from `<fields>`.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// The tag number.
    pub tag: u32,
    /// The field name, e.g. `ClOrdID`.
    pub name: String,
    /// The data type.
    pub field_type: FieldType,
    /// The type name as written in the XML.
    pub type_name: String,
    /// The enumerated values in dictionary order (empty when the field is free-form).
    pub values: Vec<FieldValue>,
    sorted_values: Vec<u32>,
    packed_values: Vec<u128>,
    /// The enumerated values of one byte, as a bitmap of the byte.
    one_byte_values: [u64; 4],
    length_field: Option<u32>,
    data_field: Option<u32>,
}

impl FieldDef {
    /// Returns whether the field has a list of allowed values.
    #[must_use]
    pub fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    #[inline]
    fn has_value(&self, value: &[u8]) -> bool {
        if let [byte] = value {
            let word = self.one_byte_values[usize::from(*byte / 64)];
            return word >> (byte % 64) & 1 != 0;
        }
        match pack_value(value) {
            Some(key) => self.packed_values.binary_search(&key).is_ok(),
            None => self.value_index(value).is_some(),
        }
    }

    fn value_index(&self, value: &[u8]) -> Option<usize> {
        self.sorted_values
            .binary_search_by(|&i| {
                self.values
                    .get(i as usize)
                    .map_or(&[][..], |v| v.value.as_bytes())
                    .cmp(value)
            })
            .ok()
            .and_then(|k| self.sorted_values.get(k))
            .map(|&i| i as usize)
    }

    /// Returns whether `value` is allowed: always true for a field without enumerated
    /// values; for multiple-value types every space-separated item must be allowed.
    #[must_use]
    pub fn is_valid_value(&self, value: &[u8]) -> bool {
        if self.values.is_empty() {
            return true;
        }
        if self.field_type.is_multiple_value() {
            value.split(|b| *b == b' ').all(|item| self.has_value(item))
        } else {
            self.has_value(value)
        }
    }

    /// Returns the description of an enumerated value, e.g. `BUY` for Side `1`.
    #[must_use]
    pub fn value_description(&self, value: &[u8]) -> Option<&str> {
        self.value_index(value)
            .and_then(|i| self.values.get(i))
            .map(|v| v.description.as_str())
    }

    /// For a `DATA`/`XMLDATA` field, returns the tag of the `LENGTH` field that gives
    /// its length (e.g. 95 for RawData 96, 93 for Signature 89).
    #[must_use]
    pub fn length_field(&self) -> Option<u32> {
        self.length_field
    }

    /// For a `LENGTH` field that measures a data field, returns the data field's tag.
    #[must_use]
    pub fn data_field(&self) -> Option<u32> {
        self.data_field
    }
}

/// Identifies a [`GroupDef`] inside one [`Dictionary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub(crate) u32);

impl GroupId {
    /// Returns the index of the group in [`Dictionary::groups`].
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One member of an expanded [`Block`]: a field or the NumInGroup field of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The tag number.
    pub tag: u32,
    /// Whether the member is required in its block.
    pub required: bool,
    /// For a NumInGroup field, the group it counts.
    pub group: Option<GroupId>,
}

/// An ordered list of members with components expanded: the header, the trailer,
/// the body of a message or one entry of a repeating group.
#[derive(Debug, Clone, Default)]
pub struct Block {
    members: Vec<Member>,
    bit_base: u32,
    bits: Vec<u64>,
    index: Vec<(u32, u32)>,
    required: Vec<u32>,
    groups: Vec<(u32, GroupId)>,
}

impl Block {
    fn new(members: Vec<Member>) -> Self {
        let mut index: Vec<(u32, u32)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.tag, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        index.sort_unstable();
        index.dedup_by_key(|e| e.0);
        let mut required: Vec<u32> = members
            .iter()
            .filter(|m| m.required)
            .map(|m| m.tag)
            .collect();
        required.sort_unstable();
        required.dedup();
        let mut groups: Vec<(u32, GroupId)> = members
            .iter()
            .filter_map(|m| m.group.map(|g| (m.tag, g)))
            .collect();
        groups.sort_unstable();
        groups.dedup_by_key(|e| e.0);
        let bit_base = index.first().map_or(0, |e| e.0);
        let span = index.last().map_or(0, |e| e.0 - bit_base + 1) as usize;
        let mut bits = vec![0u64; span.div_ceil(64)];
        for &(tag, _) in &index {
            let offset = (tag - bit_base) as usize;
            if let Some(word) = bits.get_mut(offset / 64) {
                *word |= 1 << (offset % 64);
            }
        }
        Self {
            members,
            bit_base,
            bits,
            index,
            required,
            groups,
        }
    }

    /// Returns the members in dictionary order.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Returns the number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Returns whether the block has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Returns whether `tag` is a direct member (not one nested in a group).
    #[must_use]
    #[inline]
    pub fn contains(&self, tag: u32) -> bool {
        let Some(offset) = tag.checked_sub(self.bit_base) else {
            return false;
        };
        let offset = offset as usize;
        self.bits
            .get(offset / 64)
            .is_some_and(|word| word >> (offset % 64) & 1 != 0)
    }

    /// Returns the position of `tag` among the members (its first occurrence).
    #[must_use]
    pub fn position(&self, tag: u32) -> Option<usize> {
        self.index
            .binary_search_by_key(&tag, |e| e.0)
            .ok()
            .and_then(|k| self.index.get(k))
            .map(|e| e.1 as usize)
    }

    /// Returns the required member tags, in ascending tag order.
    #[must_use]
    pub fn required_tags(&self) -> &[u32] {
        &self.required
    }

    /// Returns whether `tag` is a required member.
    #[must_use]
    pub fn is_required(&self, tag: u32) -> bool {
        self.required.binary_search(&tag).is_ok()
    }

    /// Returns the group counted by the NumInGroup member `count_tag`.
    #[must_use]
    pub fn group_id(&self, count_tag: u32) -> Option<GroupId> {
        self.groups
            .binary_search_by_key(&count_tag, |e| e.0)
            .ok()
            .and_then(|k| self.groups.get(k))
            .map(|e| e.1)
    }

    /// Returns the (NumInGroup tag, group) pairs of the block, by tag.
    pub fn groups(&self) -> impl Iterator<Item = (u32, GroupId)> + '_ {
        self.groups.iter().copied()
    }
}

/// A repeating group: its NumInGroup field, delimiter and the members of one entry.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The NumInGroup tag, e.g. 453 (NoPartyIDs).
    pub count_tag: u32,
    /// The group's name, i.e. the NumInGroup field's name.
    pub name: String,
    /// The delimiter: the first field of every entry.
    pub delimiter: u32,
    /// Whether the group itself is required where it is used.
    pub required: bool,
    /// The members of one entry.
    pub block: Block,
}

/// The category of a message (`msgcat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgCategory {
    /// A session-level message (`msgcat='admin'`).
    Admin,
    /// An application message (`msgcat='app'`, or no category).
    App,
}

/// A message definition from `<messages>`, with components expanded.
#[derive(Debug, Clone)]
pub struct MessageDef {
    /// The message name, e.g. `NewOrderSingle`.
    pub name: String,
    /// The MsgType (35) value, e.g. `D`.
    pub msg_type: String,
    /// Admin or application.
    pub category: MsgCategory,
    /// The body members.
    pub block: Block,
}

/// One item of a component as written in `<components>` (not expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentItem {
    /// A field.
    Field {
        /// The tag number.
        tag: u32,
        /// Whether it is marked required.
        required: bool,
    },
    /// A repeating group, by its NumInGroup tag.
    Group {
        /// The NumInGroup tag.
        tag: u32,
        /// Whether it is marked required.
        required: bool,
    },
    /// A nested component, by name.
    Component {
        /// The component name.
        name: String,
        /// Whether it is marked required.
        required: bool,
    },
}

/// A component definition from `<components>`.
#[derive(Debug, Clone)]
pub struct ComponentDef {
    /// The component name, e.g. `Instrument`.
    pub name: String,
    /// Its items, in dictionary order.
    pub items: Vec<ComponentItem>,
}

/// Per-tag flag: defined in `<fields>`.
pub(crate) const FLAG_DEFINED: u8 = 1;
/// Per-tag flag: a header field (or header group member).
pub(crate) const FLAG_HEADER: u8 = 2;
/// Per-tag flag: a trailer field.
pub(crate) const FLAG_TRAILER: u8 = 4;
/// Per-tag flag: a data field with a known length field.
pub(crate) const FLAG_DATA: u8 = 8;
pub(crate) const FLAG_GROUP_COUNT: u8 = 16;
/// Per-tag flag: validating a value needs the field's definition (its type has a
/// syntax, or it has enumerated values); without it any non-empty value passes.
pub(crate) const FLAG_CHECKED_VALUE: u8 = 32;
const NO_FIELD: u32 = u32::MAX;
/// No message has this MsgType (in `Dictionary::one_byte_types`).
const NO_MESSAGE: u32 = u32::MAX;
/// The largest tag number accepted in a dictionary.
const MAX_TAG: u32 = 10_000_000;

/// The id of the next dictionary built (0 stands for none).
static NEXT_DICTIONARY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A FIX data dictionary: fields, header, trailer, messages, components and groups.
#[derive(Debug, Clone)]
pub struct Dictionary {
    /// Unique to the dictionary as loaded (a clone keeps it: dictionaries do not
    /// change once built): parsers key what they remember of its flags on it.
    id: u64,
    kind: String,
    major: u32,
    minor: u32,
    service_pack: u32,
    version: String,
    fields: Vec<FieldDef>,
    by_tag: Vec<u32>,
    flags: Vec<u8>,
    /// Per tag, what the parser needs when this dictionary is the only one: the
    /// header, trailer, data and NumInGroup flags, with the header and trailer tags
    /// known without a dictionary added (see [`crate::message::builtin_flags`]).
    parse_flags: Vec<u8>,
    by_name: HashMap<String, u32>,
    header: Block,
    trailer: Block,
    messages: Vec<MessageDef>,
    msg_keys: Vec<(u128, u32)>,
    /// Per byte, the index of the message whose MsgType is that one byte
    /// ([`NO_MESSAGE`]: none): the common case found without a search.
    one_byte_types: Vec<u32>,
    components: Vec<ComponentDef>,
    component_index: HashMap<String, u32>,
    groups: Vec<GroupDef>,
}

impl Dictionary {
    /// Loads a QuickFIX data dictionary from an XML file.
    ///
    /// # Errors
    /// [`DictionaryError::Io`] when the file cannot be read, [`DictionaryError::Xml`]
    /// when it is not well-formed XML and [`DictionaryError::Invalid`] when it is not a
    /// valid dictionary (unknown field name, missing attribute, component cycle, ...).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DictionaryError> {
        let path = path.as_ref();
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let xml = std::fs::read_to_string(path).map_err(|source| DictionaryError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_xml(&xml, &file)
    }

    /// Loads a QuickFIX data dictionary from XML text; `source` names it in errors.
    ///
    /// # Errors
    /// [`DictionaryError::Xml`] when the text is not well-formed XML and
    /// [`DictionaryError::Invalid`] when it is not a valid dictionary.
    pub fn from_xml(xml: &str, source: &str) -> Result<Self, DictionaryError> {
        let root = parse_dom(xml, source)?;
        Loader { file: source }.load(&root)
    }

    /// Returns `FIX` or `FIXT` (the root's `type` attribute).
    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Returns the major version number.
    #[must_use]
    pub fn major(&self) -> u32 {
        self.major
    }

    /// Returns the minor version number.
    #[must_use]
    pub fn minor(&self) -> u32 {
        self.minor
    }

    /// Returns the service pack number (0 when none).
    #[must_use]
    pub fn service_pack(&self) -> u32 {
        self.service_pack
    }

    /// Returns the version, e.g. `FIX.4.4`, `FIXT.1.1` or `FIX.5.0SP2`.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Returns the BeginString (8) of messages governed by this dictionary: the version
    /// for FIX 4.x and FIXT, `None` for FIX 5.x application dictionaries (they travel
    /// over FIXT.1.1).
    #[must_use]
    pub fn begin_string(&self) -> Option<&str> {
        if self.kind == "FIX" && self.major >= 5 {
            None
        } else {
            Some(&self.version)
        }
    }

    /// Returns every field definition, in dictionary order.
    #[must_use]
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// Returns the definition of `tag`.
    #[must_use]
    pub fn field(&self, tag: u32) -> Option<&FieldDef> {
        let i = *self.by_tag.get(tag as usize)?;
        self.fields.get(i as usize)
    }

    /// Returns the definition of the field called `name`.
    #[must_use]
    pub fn field_by_name(&self, name: &str) -> Option<&FieldDef> {
        self.by_name.get(name).and_then(|&t| self.field(t))
    }

    /// Returns whether `tag` is defined in `<fields>`.
    #[must_use]
    pub fn is_defined(&self, tag: u32) -> bool {
        self.flags(tag) & FLAG_DEFINED != 0
    }

    #[inline]
    pub(crate) fn flags(&self, tag: u32) -> u8 {
        self.flags.get(tag as usize).copied().unwrap_or(0)
    }

    /// Returns the dictionary's id: unique to it as loaded, kept by clones.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Returns the flags the parser uses for `tag` when this dictionary is the session
    /// dictionary and the application one (or the only one): this dictionary's header,
    /// trailer, data and NumInGroup flags, plus the header and trailer flags known
    /// without a dictionary. One load instead of two.
    #[inline(always)]
    pub(crate) fn parse_flags(&self, tag: u32) -> u8 {
        self.parse_flags.get(tag as usize).copied().unwrap_or(0)
    }

    /// Returns whether `tag` belongs to the header (including header group members).
    #[must_use]
    #[inline]
    pub fn is_header_field(&self, tag: u32) -> bool {
        self.flags(tag) & FLAG_HEADER != 0
    }

    /// Returns whether `tag` belongs to the trailer.
    #[must_use]
    #[inline]
    pub fn is_trailer_field(&self, tag: u32) -> bool {
        self.flags(tag) & FLAG_TRAILER != 0
    }

    /// Returns whether `tag` is the NumInGroup field of some group anywhere.
    #[must_use]
    #[inline]
    pub fn is_group_count_field(&self, tag: u32) -> bool {
        self.flags(tag) & FLAG_GROUP_COUNT != 0
    }

    /// For a data field (`DATA`/`XMLDATA`), returns the tag of its length field.
    #[must_use]
    #[inline]
    pub fn length_field_for_data(&self, data_tag: u32) -> Option<u32> {
        if self.flags(data_tag) & FLAG_DATA == 0 {
            return None;
        }
        self.field(data_tag).and_then(FieldDef::length_field)
    }

    /// For a length field, returns the data field it measures.
    #[must_use]
    pub fn data_field_for_length(&self, length_tag: u32) -> Option<u32> {
        self.field(length_tag).and_then(FieldDef::data_field)
    }

    /// Returns the header block.
    #[must_use]
    pub fn header(&self) -> &Block {
        &self.header
    }

    /// Returns the trailer block.
    #[must_use]
    pub fn trailer(&self) -> &Block {
        &self.trailer
    }

    /// Returns every message definition, in dictionary order.
    #[must_use]
    pub fn messages(&self) -> &[MessageDef] {
        &self.messages
    }

    /// Returns the definition of the message with MsgType `msg_type`.
    #[must_use]
    pub fn message(&self, msg_type: &[u8]) -> Option<&MessageDef> {
        if let [byte] = msg_type {
            let index = self
                .one_byte_types
                .get(usize::from(*byte))
                .copied()
                .unwrap_or(NO_MESSAGE);
            return self.messages.get(index as usize);
        }
        match pack_msg_type(msg_type) {
            Some(key) => self
                .msg_keys
                .binary_search_by_key(&key, |e| e.0)
                .ok()
                .and_then(|k| self.msg_keys.get(k))
                .and_then(|e| self.messages.get(e.1 as usize)),
            None => self
                .messages
                .iter()
                .find(|m| m.msg_type.as_bytes() == msg_type),
        }
    }

    /// Returns the definition of the message called `name`.
    #[must_use]
    pub fn message_by_name(&self, name: &str) -> Option<&MessageDef> {
        self.messages.iter().find(|m| m.name == name)
    }

    /// Returns whether `msg_type` is a session-level (admin) message of this dictionary.
    #[must_use]
    pub fn is_admin(&self, msg_type: &[u8]) -> bool {
        self.message(msg_type)
            .is_some_and(|m| m.category == MsgCategory::Admin)
    }

    /// Returns every component definition, in dictionary order.
    #[must_use]
    pub fn components(&self) -> &[ComponentDef] {
        &self.components
    }

    /// Returns the component called `name`.
    #[must_use]
    pub fn component(&self, name: &str) -> Option<&ComponentDef> {
        self.component_index
            .get(name)
            .and_then(|&i| self.components.get(i as usize))
    }

    /// Returns every expanded group (one per place a group is used).
    #[must_use]
    pub fn groups(&self) -> &[GroupDef] {
        &self.groups
    }

    /// Returns the group `id`.
    #[must_use]
    #[inline]
    pub fn group(&self, id: GroupId) -> Option<&GroupDef> {
        self.groups.get(id.index())
    }
}

/// Packs a value of at most 15 bytes, with its length, into one comparable key.
fn pack_value(value: &[u8]) -> Option<u128> {
    if value.len() > 15 {
        return None;
    }
    let mut key: u128 = value.len() as u128;
    for &b in value {
        key = (key << 8) | u128::from(b);
    }
    Some(key)
}

fn pack_msg_type(msg_type: &[u8]) -> Option<u128> {
    if msg_type.is_empty() || msg_type.len() > 8 {
        return None;
    }
    let mut key: u128 = msg_type.len() as u128;
    for &b in msg_type {
        key = (key << 8) | u128::from(b);
    }
    Some(key)
}

// ---------------------------------------------------------------------------
// A minimal DOM built with quick-xml.

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn required(&self) -> bool {
        matches!(self.attr("required"), Some("Y" | "y"))
    }
}

impl fmt::Display for Node {
    /// Describes the element for error messages, e.g. `field name='Foo'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for key in ["name", "msgtype", "number"] {
            if let Some(v) = self.attr(key) {
                write!(f, " {key}='{v}'")?;
            }
        }
        Ok(())
    }
}

fn node_from(start: &BytesStart<'_>, file: &str, position: u64) -> Result<Node, DictionaryError> {
    let name = String::from_utf8_lossy(start.name().as_ref().as_bytes()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| DictionaryError::Xml {
            file: file.to_owned(),
            position,
            message: e.to_string(),
        })?;
        let key = attr.key.as_ref().to_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| DictionaryError::Xml {
                file: file.to_owned(),
                position,
                message: e.to_string(),
            })?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Node {
        name,
        attrs,
        children: Vec::new(),
    })
}

fn parse_dom(xml: &str, file: &str) -> Result<Node, DictionaryError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| DictionaryError::Xml {
            file: file.to_owned(),
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(start) => stack.push(node_from(&start, file, position)?),
            Event::Empty(start) => {
                let node = node_from(&start, file, position)?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop();
                match (node, stack.last_mut()) {
                    (Some(node), Some(parent)) => parent.children.push(node),
                    _ => {
                        return Err(DictionaryError::Xml {
                            file: file.to_owned(),
                            position,
                            message: "unbalanced end tag".to_owned(),
                        })
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(DictionaryError::Xml {
            file: file.to_owned(),
            position: reader.buffer_position(),
            message: "unexpected end of file inside an element".to_owned(),
        });
    }
    let document = stack.pop().unwrap_or_default();
    let mut roots = document.children.into_iter();
    let root = roots.next().ok_or_else(|| DictionaryError::Invalid {
        file: file.to_owned(),
        element: "fix".to_owned(),
        reason: "the document has no root element".to_owned(),
    })?;
    Ok(root)
}

// ---------------------------------------------------------------------------
// Interpreting the DOM.

struct Loader<'f> {
    file: &'f str,
}

struct Expander<'x> {
    file: &'x str,
    names: &'x HashMap<String, u32>,
    components: &'x HashMap<String, &'x Node>,
    groups: Vec<GroupDef>,
    stack: Vec<String>,
    /// Each component expanded once (as if required), shared by every use.
    memo: HashMap<String, Vec<Member>>,
}

/// The deepest nesting of components and groups accepted.
const MAX_NESTING: usize = 64;

impl Loader<'_> {
    fn invalid(&self, element: impl fmt::Display, reason: impl Into<String>) -> DictionaryError {
        DictionaryError::Invalid {
            file: self.file.to_owned(),
            element: element.to_string(),
            reason: reason.into(),
        }
    }

    fn attr<'n>(&self, node: &'n Node, name: &str) -> Result<&'n str, DictionaryError> {
        node.attr(name)
            .ok_or_else(|| self.invalid(node, format!("missing attribute '{name}'")))
    }

    fn number(&self, node: &Node, name: &str) -> Result<u32, DictionaryError> {
        let text = self.attr(node, name)?;
        text.trim().parse::<u32>().map_err(|_| {
            self.invalid(
                node,
                format!("attribute '{name}' is not a number: {text:?}"),
            )
        })
    }

    fn load(&self, root: &Node) -> Result<Dictionary, DictionaryError> {
        if root.name != "fix" {
            return Err(self.invalid(&root.name, "the root element must be <fix>"));
        }
        let kind = root.attr("type").unwrap_or("FIX").to_owned();
        if kind != "FIX" && kind != "FIXT" {
            return Err(self.invalid(root, format!("type must be FIX or FIXT, not {kind:?}")));
        }
        let major = self.number(root, "major")?;
        let minor = self.number(root, "minor")?;
        let service_pack = match root.attr("servicepack") {
            Some(_) => self.number(root, "servicepack")?,
            None => 0,
        };
        let mut version = format!("{kind}.{major}.{minor}");
        if service_pack > 0 {
            version.push_str(&format!("SP{service_pack}"));
        }

        // Fields.
        let fields_node = root
            .child("fields")
            .ok_or_else(|| self.invalid(root, "no <fields> section"))?;
        let mut fields: Vec<FieldDef> = Vec::new();
        let mut by_name: HashMap<String, u32> = HashMap::new();
        let mut max_tag = 0u32;
        for node in fields_node.children.iter().filter(|n| n.name == "field") {
            let tag = self.number(node, "number")?;
            if tag == 0 || tag > MAX_TAG {
                return Err(self.invalid(node, format!("field number {tag} is out of range")));
            }
            let name = self.attr(node, "name")?.to_owned();
            let type_name = self.attr(node, "type")?.to_owned();
            let mut values = Vec::new();
            for v in node.children.iter().filter(|n| n.name == "value") {
                values.push(FieldValue {
                    value: self.attr(v, "enum")?.to_owned(),
                    description: v.attr("description").unwrap_or_default().to_owned(),
                });
            }
            let mut sorted: Vec<u32> = (0..values.len())
                .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect();
            sorted.sort_by(|&a, &b| {
                let va = values.get(a as usize).map(|v| v.value.as_bytes());
                let vb = values.get(b as usize).map(|v| v.value.as_bytes());
                va.cmp(&vb)
            });
            let mut packed: Vec<u128> = values
                .iter()
                .filter_map(|v| pack_value(v.value.as_bytes()))
                .collect();
            packed.sort_unstable();
            let mut one_byte_values = [0u64; 4];
            for v in &values {
                if let [byte] = v.value.as_bytes() {
                    one_byte_values[usize::from(*byte / 64)] |= 1 << (byte % 64);
                }
            }
            if by_name.insert(name.clone(), tag).is_some() {
                return Err(self.invalid(node, format!("field name '{name}' is defined twice")));
            }
            max_tag = max_tag.max(tag);
            fields.push(FieldDef {
                tag,
                name,
                field_type: FieldType::from_xml(&type_name),
                type_name,
                values,
                sorted_values: sorted,
                packed_values: packed,
                one_byte_values,
                length_field: None,
                data_field: None,
            });
        }
        if fields.is_empty() {
            return Err(self.invalid(fields_node, "no fields defined"));
        }
        let mut by_tag = vec![NO_FIELD; max_tag as usize + 1];
        for (i, f) in fields.iter().enumerate() {
            let slot = by_tag
                .get_mut(f.tag as usize)
                .ok_or_else(|| self.invalid("fields", "field number out of range"))?;
            if *slot != NO_FIELD {
                return Err(self.invalid(
                    format!("field number='{}'", f.tag),
                    "field number is defined twice",
                ));
            }
            *slot = u32::try_from(i).unwrap_or(NO_FIELD);
        }
        link_data_fields(&mut fields, &by_name, &by_tag);

        // Components (raw items, and the nodes for expansion).
        let mut component_nodes: HashMap<String, &Node> = HashMap::new();
        let mut components = Vec::new();
        let mut component_index = HashMap::new();
        if let Some(section) = root.child("components") {
            for node in section.children.iter().filter(|n| n.name == "component") {
                let name = self.attr(node, "name")?.to_owned();
                let mut items = Vec::new();
                for item in &node.children {
                    let required = item.required();
                    match item.name.as_str() {
                        "field" | "group" => {
                            let fname = self.attr(item, "name")?;
                            let tag = *by_name.get(fname).ok_or_else(|| {
                                self.invalid(
                                    node,
                                    format!("field '{fname}' is not defined in <fields>"),
                                )
                            })?;
                            items.push(if item.name == "field" {
                                ComponentItem::Field { tag, required }
                            } else {
                                ComponentItem::Group { tag, required }
                            });
                        }
                        "component" => items.push(ComponentItem::Component {
                            name: self.attr(item, "name")?.to_owned(),
                            required,
                        }),
                        _ => {}
                    }
                }
                if component_nodes.insert(name.clone(), node).is_some() {
                    return Err(self.invalid(node, "component is defined twice"));
                }
                component_index.insert(name.clone(), u32::try_from(components.len()).unwrap_or(0));
                components.push(ComponentDef { name, items });
            }
        }

        let mut expander = Expander {
            file: self.file,
            names: &by_name,
            components: &component_nodes,
            groups: Vec::new(),
            stack: Vec::new(),
            memo: HashMap::new(),
        };

        // Header and trailer: required for FIX 4.x and FIXT, empty for FIX 5.x.
        let needs_sections = kind == "FIXT" || major < 5;
        let header = match root.child("header") {
            Some(node) => expander.block(node, true)?,
            None if needs_sections => return Err(self.invalid(root, "no <header> section")),
            None => Block::default(),
        };
        let trailer = match root.child("trailer") {
            Some(node) => expander.block(node, true)?,
            None if needs_sections => return Err(self.invalid(root, "no <trailer> section")),
            None => Block::default(),
        };

        // Messages.
        let messages_node = root
            .child("messages")
            .ok_or_else(|| self.invalid(root, "no <messages> section"))?;
        let mut messages = Vec::new();
        let mut msg_keys = Vec::new();
        for node in messages_node
            .children
            .iter()
            .filter(|n| n.name == "message")
        {
            let msg_type = self.attr(node, "msgtype")?.to_owned();
            let name = node.attr("name").unwrap_or_default().to_owned();
            let category = if node.attr("msgcat") == Some("admin") {
                MsgCategory::Admin
            } else {
                MsgCategory::App
            };
            let block = expander.block(node, true)?;
            let index = u32::try_from(messages.len()).unwrap_or(u32::MAX);
            if let Some(key) = pack_msg_type(msg_type.as_bytes()) {
                msg_keys.push((key, index));
            }
            messages.push(MessageDef {
                name,
                msg_type,
                category,
                block,
            });
        }
        msg_keys.sort_unstable();
        for pair in msg_keys.windows(2) {
            if let [a, b] = pair {
                if a.0 == b.0 {
                    let mt = messages
                        .get(b.1 as usize)
                        .map(|m| m.msg_type.clone())
                        .unwrap_or_default();
                    return Err(self.invalid(
                        format!("message msgtype='{mt}'"),
                        "msgtype is defined twice",
                    ));
                }
            }
        }
        let mut one_byte_types = vec![NO_MESSAGE; 256];
        for (index, m) in (0u32..).zip(&messages) {
            if let [byte] = m.msg_type.as_bytes() {
                if let Some(slot) = one_byte_types.get_mut(usize::from(*byte)) {
                    *slot = index;
                }
            }
        }
        let groups = expander.groups;
        let mut header_tags = Vec::new();
        collect_tags(&header, &groups, &mut header_tags, 0);

        // Per-tag flags.
        let mut flags = vec![0u8; by_tag.len()];
        for f in &fields {
            if let Some(slot) = flags.get_mut(f.tag as usize) {
                *slot |= FLAG_DEFINED;
                if f.field_type.has_syntax() || f.has_values() {
                    *slot |= FLAG_CHECKED_VALUE;
                }
                if f.field_type.is_data() && f.length_field.is_some() {
                    *slot |= FLAG_DATA;
                }
            }
        }
        for tag in header_tags {
            if let Some(slot) = flags.get_mut(tag as usize) {
                *slot |= FLAG_HEADER;
            }
        }
        for m in trailer.members() {
            if let Some(slot) = flags.get_mut(m.tag as usize) {
                *slot |= FLAG_TRAILER;
            }
        }
        for g in &groups {
            if let Some(slot) = flags.get_mut(g.count_tag as usize) {
                *slot |= FLAG_GROUP_COUNT;
            }
        }

        let mut parse_flags: Vec<u8> = flags
            .iter()
            .map(|f| f & (FLAG_HEADER | FLAG_TRAILER | FLAG_DATA | FLAG_GROUP_COUNT))
            .collect();
        parse_flags.resize(parse_flags.len().max(crate::message::BUILTIN_TAGS), 0);
        for (tag, slot) in (0u32..).zip(parse_flags.iter_mut()) {
            *slot |= crate::message::builtin_flags(tag) & (FLAG_HEADER | FLAG_TRAILER);
        }

        Ok(Dictionary {
            id: NEXT_DICTIONARY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            kind,
            major,
            minor,
            service_pack,
            version,
            fields,
            by_tag,
            flags,
            parse_flags,
            by_name,
            header,
            trailer,
            messages,
            msg_keys,
            one_byte_types,
            components,
            component_index,
            groups,
        })
    }
}

/// Pairs every DATA/XMLDATA field with the LENGTH field that precedes it on the wire:
/// `<name>Len` or `<name>Length` when such a LENGTH field exists, otherwise the field
/// numbered one less when it is a LENGTH field.
fn link_data_fields(fields: &mut [FieldDef], by_name: &HashMap<String, u32>, by_tag: &[u32]) {
    let type_of = |fields: &[FieldDef], tag: u32| -> Option<FieldType> {
        let i = *by_tag.get(tag as usize)?;
        fields.get(i as usize).map(|f| f.field_type)
    };
    let mut pairs = Vec::new();
    for f in fields.iter().filter(|f| f.field_type.is_data()) {
        let by_suffix = ["Len", "Length"]
            .iter()
            .filter_map(|s| by_name.get(&format!("{}{s}", f.name)).copied())
            .find(|&t| type_of(fields, t) == Some(FieldType::Length));
        let previous = f
            .tag
            .checked_sub(1)
            .filter(|&t| type_of(fields, t) == Some(FieldType::Length));
        if let Some(length) = by_suffix.or(previous) {
            pairs.push((f.tag, length));
        }
    }
    for (data, length) in pairs {
        for f in fields.iter_mut() {
            if f.tag == data {
                f.length_field = Some(length);
            } else if f.tag == length {
                f.data_field = Some(data);
            }
        }
    }
}

/// Adds the tags of `block` and of the groups nested in it to `out`.
fn collect_tags(block: &Block, groups: &[GroupDef], out: &mut Vec<u32>, depth: usize) {
    for m in block.members() {
        out.push(m.tag);
        if let Some(g) = m.group.and_then(|g| groups.get(g.index())) {
            if depth < MAX_NESTING {
                collect_tags(&g.block, groups, out, depth + 1);
            }
        }
    }
}

impl Expander<'_> {
    fn invalid(&self, element: impl fmt::Display, reason: impl Into<String>) -> DictionaryError {
        DictionaryError::Invalid {
            file: self.file.to_owned(),
            element: element.to_string(),
            reason: reason.into(),
        }
    }

    fn tag_of(&self, parent: &Node, node: &Node) -> Result<u32, DictionaryError> {
        let name = node
            .attr("name")
            .ok_or_else(|| self.invalid(node, "missing attribute 'name'"))?;
        self.names.get(name).copied().ok_or_else(|| {
            self.invalid(parent, format!("field '{name}' is not defined in <fields>"))
        })
    }

    /// Expands the children of `node` (a header, trailer, message or group) into a block.
    fn block(&mut self, node: &Node, required_context: bool) -> Result<Block, DictionaryError> {
        let mut members = Vec::new();
        self.expand(node, &node.children, required_context, &mut members)?;
        Ok(Block::new(members))
    }

    fn expand(
        &mut self,
        parent: &Node,
        children: &[Node],
        required_context: bool,
        out: &mut Vec<Member>,
    ) -> Result<(), DictionaryError> {
        if self.stack.len() > MAX_NESTING {
            return Err(self.invalid(parent, "components and groups are nested too deeply"));
        }
        for child in children {
            match child.name.as_str() {
                "field" => out.push(Member {
                    tag: self.tag_of(parent, child)?,
                    required: required_context && child.required(),
                    group: None,
                }),
                "group" => {
                    let tag = self.tag_of(parent, child)?;
                    let group = self.group(child, tag)?;
                    out.push(Member {
                        tag,
                        required: required_context && child.required(),
                        group,
                    });
                }
                "component" => {
                    let name = child
                        .attr("name")
                        .ok_or_else(|| self.invalid(child, "missing attribute 'name'"))?;
                    let component = *self.components.get(name).ok_or_else(|| {
                        self.invalid(parent, format!("component '{name}' is not defined"))
                    })?;
                    if self.stack.iter().any(|s| s == name) {
                        return Err(self.invalid(child, "component includes itself"));
                    }
                    let required = required_context && child.required();
                    if let Some(members) = self.memo.get(name) {
                        out.extend(members.iter().map(|m| Member {
                            required: m.required && required,
                            ..*m
                        }));
                        continue;
                    }
                    self.stack.push(name.to_owned());
                    let mut members = Vec::new();
                    let result = self.expand(component, &component.children, true, &mut members);
                    self.stack.pop();
                    result?;
                    out.extend(members.iter().map(|m| Member {
                        required: m.required && required,
                        ..*m
                    }));
                    self.memo.insert(name.to_owned(), members);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn group(&mut self, node: &Node, count_tag: u32) -> Result<Option<GroupId>, DictionaryError> {
        self.stack.push(format!("group {count_tag}"));
        let block = self.block(node, true);
        self.stack.pop();
        let block = block?;
        let Some(delimiter) = block.members().first().map(|m| m.tag) else {
            // QuickFIX ignores a group without members: the count is a plain field.
            return Ok(None);
        };
        let id = GroupId(u32::try_from(self.groups.len()).unwrap_or(u32::MAX));
        self.groups.push(GroupDef {
            count_tag,
            name: node.attr("name").unwrap_or_default().to_owned(),
            delimiter,
            required: node.required(),
            block,
        });
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r"<fix type='FIX' major='4' minor='4' servicepack='0'>
 <header>
  <field name='BeginString' required='Y' />
  <field name='BodyLength' required='Y' />
  <field name='MsgType' required='Y' />
  <field name='SenderCompID' required='Y' />
  <group name='NoHops' required='N'>
   <field name='HopCompID' required='N' />
  </group>
 </header>
 <trailer>
  <field name='CheckSum' required='Y' />
 </trailer>
 <messages>
  <message name='Order' msgtype='D' msgcat='app'>
   <field name='ClOrdID' required='Y' />
   <component name='Instrument' required='Y' />
   <component name='Parties' required='N' />
   <field name='Side' required='Y' />
  </message>
  <message name='Heartbeat' msgtype='0' msgcat='admin' />
 </messages>
 <components>
  <component name='Instrument'>
   <field name='Symbol' required='Y' />
   <field name='RawDataLength' required='N' />
   <field name='RawData' required='N' />
  </component>
  <component name='Parties'>
   <group name='NoPartyIDs' required='N'>
    <field name='PartyID' required='N' />
    <field name='PartyRole' required='Y' />
   </group>
  </component>
 </components>
 <fields>
  <field number='8' name='BeginString' type='STRING' />
  <field number='9' name='BodyLength' type='LENGTH' />
  <field number='10' name='CheckSum' type='STRING' />
  <field number='11' name='ClOrdID' type='STRING' />
  <field number='35' name='MsgType' type='STRING'>
   <value enum='0' description='HEARTBEAT' />
   <value enum='D' description='ORDER_SINGLE' />
  </field>
  <field number='49' name='SenderCompID' type='STRING' />
  <field number='54' name='Side' type='CHAR'>
   <value enum='1' description='BUY' />
   <value enum='2' description='SELL' />
  </field>
  <field number='55' name='Symbol' type='STRING' />
  <field number='95' name='RawDataLength' type='LENGTH' />
  <field number='96' name='RawData' type='DATA' />
  <field number='448' name='PartyID' type='STRING' />
  <field number='452' name='PartyRole' type='INT' />
  <field number='453' name='NoPartyIDs' type='NUMINGROUP' />
  <field number='627' name='NoHops' type='NUMINGROUP' />
  <field number='628' name='HopCompID' type='STRING' />
 </fields>
</fix>";

    fn mini() -> Dictionary {
        Dictionary::from_xml(MINI, "mini.xml").expect("mini dictionary loads")
    }

    #[test]
    fn loads_version_fields_and_enums() {
        let d = mini();
        assert_eq!(d.version(), "FIX.4.4");
        assert_eq!(d.begin_string(), Some("FIX.4.4"));
        assert_eq!(d.fields().len(), 15);
        let side = d.field(54).expect("Side");
        assert_eq!(side.name, "Side");
        assert_eq!(side.field_type, FieldType::Char);
        assert!(side.is_valid_value(b"1"));
        assert!(!side.is_valid_value(b"3"));
        assert_eq!(side.value_description(b"2"), Some("SELL"));
        assert_eq!(d.field_by_name("ClOrdID").map(|f| f.tag), Some(11));
        assert!(d.field(12).is_none());
        assert!(d.field(1_000_000).is_none());
    }

    #[test]
    fn expands_components_and_groups() {
        let d = mini();
        let order = d.message(b"D").expect("order");
        assert_eq!(order.name, "Order");
        let tags: Vec<u32> = order.block.members().iter().map(|m| m.tag).collect();
        assert_eq!(tags, vec![11, 55, 95, 96, 453, 54]);
        assert_eq!(order.block.required_tags(), &[11, 54, 55]);
        let gid = order.block.group_id(453).expect("parties group");
        let g = d.group(gid).expect("group");
        assert_eq!(g.delimiter, 448);
        assert!(g.block.is_required(452));
        assert!(!g.required);
        assert!(d.is_group_count_field(453));
        assert!(d.message(b"X").is_none());
        assert!(d.is_admin(b"0"));
        assert!(!d.is_admin(b"D"));
        assert_eq!(d.components().len(), 2);
        assert!(d.component("Parties").is_some());
    }

    #[test]
    fn header_trailer_and_data_fields() {
        let d = mini();
        assert!(d.is_header_field(49));
        assert!(d.is_header_field(627));
        assert!(
            d.is_header_field(628),
            "header group members count as header"
        );
        assert!(!d.is_header_field(11));
        assert!(d.is_trailer_field(10));
        assert_eq!(d.length_field_for_data(96), Some(95));
        assert_eq!(d.data_field_for_length(95), Some(96));
        assert_eq!(d.length_field_for_data(55), None);
        assert_eq!(d.header().required_tags(), &[8, 9, 35, 49]);
    }

    #[test]
    fn bad_xml_is_a_typed_error() {
        match Dictionary::from_xml("<fix major='4' minor='2'><fields>", "bad.xml") {
            Err(DictionaryError::Xml { file, .. }) => assert_eq!(file, "bad.xml"),
            other => panic!("expected Xml error, got {other:?}"),
        }
        match Dictionary::from_xml("<fox/>", "bad.xml") {
            Err(DictionaryError::Invalid { element, .. }) => assert_eq!(element, "fox"),
            other => panic!("expected Invalid error, got {other:?}"),
        }
        let unknown = MINI.replace("name='Symbol' required='Y'", "name='Symbl' required='Y'");
        match Dictionary::from_xml(&unknown, "u.xml") {
            Err(e @ DictionaryError::Invalid { .. }) => {
                let text = e.to_string();
                assert!(text.contains("u.xml"), "{text}");
                assert!(text.contains("component name='Instrument'"), "{text}");
                assert!(text.contains("Symbl"), "{text}");
            }
            other => panic!("expected Invalid error, got {other:?}"),
        }
        let no_major = MINI.replace("major='4'", "");
        assert!(matches!(
            Dictionary::from_xml(&no_major, "m.xml"),
            Err(DictionaryError::Invalid { reason, .. }) if reason.contains("major")
        ));
        let missing = Dictionary::from_file("/nonexistent/FIX99.xml");
        assert!(matches!(missing, Err(DictionaryError::Io { file, .. }) if file == "FIX99.xml"));
    }

    #[test]
    fn component_cycle_is_rejected() {
        let cyclic = MINI.replace(
            "<field name='PartyID' required='N' />",
            "<field name='PartyID' required='N' /><component name='Parties' required='N' />",
        );
        assert!(matches!(
            Dictionary::from_xml(&cyclic, "c.xml"),
            Err(DictionaryError::Invalid { reason, .. }) if reason.contains("itself")
        ));
    }

    #[test]
    fn one_byte_msg_types_are_found_as_a_scan_finds_them() {
        let d = mini();
        for byte in 0..=u8::MAX {
            let scan = d
                .messages()
                .iter()
                .find(|m| m.msg_type.as_bytes() == [byte]);
            assert_eq!(
                d.message(&[byte]).map(|m| &m.name),
                scan.map(|m| &m.name),
                "{byte}"
            );
        }
        assert_eq!(d.message(b"D").map(|m| m.name.as_str()), Some("Order"));
        assert!(d.message(b"").is_none());
    }

    #[test]
    fn parse_flags_merge_the_dictionary_and_the_builtin_flags() {
        let d = mini();
        let options = crate::message::ParseOptions::with_dictionary(&d);
        for tag in (0..3_000).chain([u32::MAX - 1, u32::MAX]) {
            assert_eq!(d.parse_flags(tag), options.tag_flags(tag), "{tag}");
        }
    }

    #[test]
    fn packed_msg_type_keys_are_distinct() {
        assert_ne!(pack_msg_type(b"A"), pack_msg_type(b"\0A"));
        assert_eq!(pack_msg_type(b""), None);
        assert_eq!(pack_msg_type(b"123456789"), None);
    }
}
