//! Carrying the crate's typed loading errors through candle's `VarBuilder`, whose backends must return
//! `candle_core::Error`: the error travels boxed inside candle's `WrappedContext` and is unboxed again
//! when it re-enters the crate (`From<candle_core::Error> for Error`), so callers still see
//! `Error::MissingTensor`, `Error::ShapeMismatch`, ... naming the file and the tensor.

use crate::error::Error;

/// What is written as context of a boxed loading error (only seen if it escapes the crate unconverted).
const CONTEXT: &str = "omnigen-model weight loading";

/// Boxes `e` into a candle error for a `VarBuilder` backend.
pub(crate) fn into_candle(e: Error) -> candle_core::Error {
    match e {
        // Already a candle error: no need to box it.
        Error::Candle(inner) => inner,
        e => candle_core::Error::WrappedContext {
            wrapped: Box::new(e),
            context: CONTEXT.to_string(),
        },
    }
}

/// A candle error as the crate's error: a boxed loading error comes back as itself, any other error as
/// `Error::Candle`.
pub(crate) fn from_candle(e: candle_core::Error) -> Error {
    match e {
        candle_core::Error::WrappedContext { wrapped, context } => {
            match wrapped.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(wrapped) => {
                    Error::Candle(candle_core::Error::WrappedContext { wrapped, context })
                }
            }
        }
        candle_core::Error::WithBacktrace { inner, backtrace } => match from_candle(*inner) {
            Error::Candle(inner) => Error::Candle(candle_core::Error::WithBacktrace {
                inner: Box::new(inner),
                backtrace,
            }),
            ours => ours,
        },
        other => Error::Candle(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loading_error_survives_the_round_trip() {
        let e = Error::ShapeMismatch {
            name: "w".into(),
            expected: vec![2],
            found: vec![3],
        };
        let back = from_candle(into_candle(e));
        assert!(
            matches!(&back, Error::ShapeMismatch { name, .. } if name == "w"),
            "{back}"
        );
    }

    #[test]
    fn other_candle_errors_stay_candle_errors() {
        let back = from_candle(candle_core::Error::Msg("boom".into()));
        assert!(matches!(back, Error::Candle(_)), "{back}");
        assert_eq!(back.to_string(), "boom");
    }
}
