//! FIX messages: parsing tag=value bytes into fields and repeating groups, and encoding them.
