//! The connector wire protocol.
