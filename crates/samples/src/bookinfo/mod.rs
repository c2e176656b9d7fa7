//! Istio's Bookinfo: productpage calls details and reviews; reviews v2 and v3 call ratings.
//! The JSON the services exchange keeps bookinfo's field names, so that a real bookinfo
//! service and a Weft one can stand in for each other.

pub mod details;
mod page;
pub mod productpage;
pub mod ratings;
pub mod reviews;

use serde::{Deserialize, Serialize};

/// The one book bookinfo sells.
pub(crate) const PRODUCT_ID: u32 = 0;
pub(crate) const PRODUCT_TITLE: &str = "The Comedy of Errors";
/// Rendered as HTML, as bookinfo's `descriptionHtml`.
pub(crate) const PRODUCT_DESCRIPTION_HTML: &str = "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">\
Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. \
It is his shortest and one of his most farcical comedies, with a major part of the humour \
coming from slapstick and mistaken identity, in addition to puns and word play.";

/// What reviews answers for `/reviews/ID`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ReviewsReply {
    pub id: String,
    /// The instance that answered: productpage shows it as "Reviews served by".
    pub podname: String,
    /// Bookinfo writes the string `"null"` when the cluster has no name.
    pub clustername: String,
    pub reviews: Vec<Review>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Review {
    pub reviewer: String,
    pub text: String,
    /// Absent from reviews v1, which does not call ratings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
}

/// Either stars in a color, or the error reviews got from ratings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Rating {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stars: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Parses a product id path segment as the originals do (digits only).
pub(crate) fn product_id(segment: &str) -> Option<u32> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}
