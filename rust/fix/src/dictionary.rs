//! FIX data dictionaries loaded from QuickFIX XML specs: fields, types, enums, messages, groups.
