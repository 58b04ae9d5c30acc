//! Axum extractors: `LocalUser` and `Option<LocalUser>`.

use std::convert::Infallible;

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::request::Parts;

use crate::{LocalUser, Rejection, rejection::MISSING_LAYER, service::Anonymous};

/// Why a [`LocalUser`] could not be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalUserRejection {
    /// [`EnsureUserLayer`](crate::EnsureUserLayer) is not installed on this
    /// route: a server bug, answered `500 missing_layer`.
    MissingLayer,
    /// The layer is optional and the request carried no token: `401 missing_token`.
    Anonymous,
}

impl IntoResponse for LocalUserRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Anonymous => Rejection::MissingToken.to_response().into_response(),
            Self::MissingLayer => {
                tracing::error!(
                    target: "ensure_user",
                    "LocalUser extracted on a route without EnsureUserLayer"
                );
                MISSING_LAYER.response().into_response()
            }
        }
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for LocalUser {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<LocalUser>() {
            return Ok(user.clone());
        }
        Err(if parts.extensions.get::<Anonymous>().is_some() {
            LocalUserRejection::Anonymous
        } else {
            LocalUserRejection::MissingLayer
        })
    }
}

/// `Option<LocalUser>`: `None` for a tokenless request under an optional
/// layer; still `500 missing_layer` when the layer is absent, so that a
/// forgotten layer never silently makes every request anonymous.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for LocalUser {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<LocalUser>() {
            return Ok(Some(user.clone()));
        }
        if parts.extensions.get::<Anonymous>().is_some() {
            return Ok(None);
        }
        Err(LocalUserRejection::MissingLayer)
    }
}

const _: fn() = || {
    // The rejection for `Option<LocalUser>` is never `Infallible`: see above.
    let _: Option<Infallible> = None;
};
