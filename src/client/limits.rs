//! The checks of keys and values against the server's limits, made before anything is sent.

use super::ClientError;
use crate::wire::{Field, Limits, Op, OpView};

/// Refuse an operation whose key or value the server would refuse (an empty key too).
pub fn check_limits(op: &Op, limits: &Limits) -> Result<(), ClientError> {
    check_view_limits(&op.view(), limits)
}

/// [`check_limits`] of a borrowed operation.
pub fn check_view_limits(op: &OpView<'_>, limits: &Limits) -> Result<(), ClientError> {
    let key = |k: &[u8]| {
        if k.is_empty() || k.len() > limits.max_key as usize {
            return Err(ClientError::TooLarge {
                what: Field::Key,
                len: k.len() as u64,
                max: limits.max_key,
            });
        }
        Ok(())
    };
    let value = |v: &[u8]| {
        if v.len() > limits.max_value as usize {
            return Err(ClientError::TooLarge {
                what: Field::Value,
                len: v.len() as u64,
                max: limits.max_value,
            });
        }
        Ok(())
    };
    match *op {
        OpView::Insert { key: k, value: v } | OpView::InsertNew { key: k, value: v } => {
            key(k)?;
            value(v)
        }
        OpView::Read { key: k } | OpView::Delete { key: k } | OpView::Add { key: k, .. } => key(k),
        OpView::Cas {
            key: k,
            expected,
            new,
        } => {
            key(k)?;
            if let Some(e) = expected {
                value(e)?;
            }
            value(new)
        }
        OpView::Len
        | OpView::Scan { .. }
        | OpView::Print { .. }
        | OpView::ThreadsStart { .. }
        | OpView::ThreadsStop
        | OpView::Stats
        | OpView::Quit => Ok(()),
    }
}
