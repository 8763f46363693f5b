//! Validation of FIX messages against a data dictionary, with the SessionRejectReason of each failure.
