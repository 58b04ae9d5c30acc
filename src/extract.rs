//! Axum extractors: `Principal`, `LocalUser`, `LocalOrganization`, and
//! their `Option`s.

use std::convert::Infallible;

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::request::Parts;

use crate::{
    principal::LocalOrganization,
    principal::LocalUser,
    principal::Principal,
    rejection::Rejection,
    rejection::{MISSING_LAYER, NO_ACTIVE_ORGANIZATION, NO_USER, ORGANIZATIONS_NOT_RESOLVED},
    service::Anonymous,
};

/// Why a [`LocalUser`] could not be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalUserRejection {
    /// [`EnsureUserLayer`](crate::EnsureUserLayer) is not installed on this
    /// route: a server bug, answered `500 missing_layer`.
    MissingLayer,
    /// The layer is optional and the request carried no token: `401 missing_token`.
    Anonymous,
    /// The credential is not a user's (an organization's API key, a
    /// machine's token): `403 no_user`.
    NoUser,
}

/// The same response as [`Rejection::to_response`]: a handler may return
/// `Result<_, Rejection>` to refuse a request as the layer does.
///
/// ```
/// use axum::{Json, routing::get};
/// use ensure_user::{LocalUser, Rejection};
///
/// # fn blocked_here(_: &str) -> bool { false }
/// async fn me(user: LocalUser) -> Result<Json<String>, Rejection> {
///     // The app's own list of blocked users, refused as Clerk's bans are.
///     if blocked_here(user.clerk_id()) {
///         return Err(Rejection::UserBanned);
///     }
///     Ok(Json(user.clerk_id().to_owned()))
/// }
/// # let _: axum::Router = axum::Router::new().route("/me", get(me));
/// ```
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.to_response().into_response()
    }
}

impl IntoResponse for LocalUserRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Anonymous => Rejection::MissingToken.to_response().into_response(),
            Self::NoUser => NO_USER.response().into_response(),
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

/// The request's principal: `Ok(None)` when the layer is optional and the
/// request carried no token; refused when the layer is missing.
fn principal_of(parts: &Parts) -> Result<Option<&Principal>, LocalUserRejection> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(Some(principal));
    }
    if parts.extensions.get::<Anonymous>().is_some() {
        return Ok(None);
    }
    Err(LocalUserRejection::MissingLayer)
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(parts)?
            .cloned()
            .ok_or(LocalUserRejection::Anonymous)
    }
}

/// `Option<Principal>`: `None` for a tokenless request under an optional
/// layer; still `500 missing_layer` when the layer is absent.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(principal_of(parts)?.cloned())
    }
}

/// `LocalUser`: refused `403 no_user` when the credential is not a user's.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for LocalUser {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(parts)?
            .ok_or(LocalUserRejection::Anonymous)?
            .user()
            .ok_or(LocalUserRejection::NoUser)
    }
}

/// `Option<LocalUser>`: `None` for a tokenless request under an optional
/// layer, and for a credential that is not a user's; still `500
/// missing_layer` when the layer is absent, so that a forgotten layer never
/// silently makes every request anonymous.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for LocalUser {
    type Rejection = LocalUserRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(principal_of(parts)?.and_then(Principal::user))
    }
}

const _: fn() = || {
    // The rejection for `Option<LocalUser>` is never `Infallible`: see above.
    let _: Option<Infallible> = None;
};

/// Why a [`LocalOrganization`] could not be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalOrganizationRejection {
    /// No user: the layer is missing, or the request was anonymous.
    User(LocalUserRejection),
    /// The layer does not resolve organizations (see
    /// [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations)):
    /// a server bug, answered `500 organizations_not_resolved`.
    NotResolved,
    /// The token names no active organization: `403 no_active_organization`.
    NoActiveOrganization,
}

impl IntoResponse for LocalOrganizationRejection {
    fn into_response(self) -> Response {
        match self {
            Self::User(rejection) => rejection.into_response(),
            Self::NotResolved => {
                tracing::error!(
                    target: "ensure_user",
                    "LocalOrganization extracted behind a layer without organizations"
                );
                ORGANIZATIONS_NOT_RESOLVED.response().into_response()
            }
            Self::NoActiveOrganization => NO_ACTIVE_ORGANIZATION.response().into_response(),
        }
    }
}

/// The request's principal, for the organization extractors: `Ok(None)`
/// when the layer is optional and the request carried no token.
fn resolving_principal_of(parts: &Parts) -> Result<Option<&Principal>, LocalOrganizationRejection> {
    let principal = principal_of(parts).map_err(LocalOrganizationRejection::User)?;
    if principal.is_some_and(|principal| !principal.organizations_resolved()) {
        return Err(LocalOrganizationRejection::NotResolved);
    }
    Ok(principal)
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for LocalOrganization {
    type Rejection = LocalOrganizationRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = resolving_principal_of(parts)?.ok_or(LocalOrganizationRejection::User(
            LocalUserRejection::Anonymous,
        ))?;
        principal
            .organization()
            .ok_or(LocalOrganizationRejection::NoActiveOrganization)
    }
}

/// `Option<LocalOrganization>`: `None` when the token names no active
/// organization (or an optional layer let a tokenless request through);
/// still a `500` when the layer is missing or does not resolve organizations.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for LocalOrganization {
    type Rejection = LocalOrganizationRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(resolving_principal_of(parts)?.and_then(Principal::organization))
    }
}
