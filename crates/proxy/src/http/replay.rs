//! Request bodies that can be sent more than once (to a retry, to mirrors), and response
//! bodies that must end by the request's deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{Body, BodyError, boxed};

/// How much of a request body the proxy keeps so that a retry or a mirror can send it
/// again (Envoy's default per-request buffer limit is 1 MiB as well). A longer body is
/// streamed once and never retried or mirrored.
pub const BUFFER_LIMIT: usize = 1 << 20;

/// A downstream request body, as far as the proxy has read it.
pub enum RequestBody {
    /// Nothing to send (e.g. a GET): every attempt gets an empty body.
    Empty,
    /// The whole body, kept for every attempt.
    Buffered {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Not read yet (nothing needs it twice), or too long to keep: sent once, by the first
    /// attempt, starting with what was already read.
    Streaming { read: Bytes, rest: Option<Incoming> },
}

/// Why a request body could not be read.
#[derive(Debug)]
pub struct ReadError(pub hyper::Error);

impl RequestBody {
    /// Takes `body` as it is: buffered only when asked (`keep`) and short enough.
    pub async fn read(body: Incoming, keep: bool) -> Result<RequestBody, ReadError> {
        if body.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        if !keep {
            return Ok(RequestBody::Streaming {
                read: Bytes::new(),
                rest: Some(body),
            });
        }
        let mut body = body;
        let mut data = BytesMut::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok(RequestBody::Buffered {
                    data: data.freeze(),
                    trailers: None,
                });
            };
            let frame = frame.map_err(ReadError)?;
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => {
                    return Ok(RequestBody::Buffered {
                        data: data.freeze(),
                        trailers: frame.into_trailers().ok(),
                    });
                }
            }
            if data.len() > BUFFER_LIMIT {
                return Ok(RequestBody::Streaming {
                    read: data.freeze(),
                    rest: Some(body),
                });
            }
        }
    }

    /// Whether the body can be sent again.
    pub fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Streaming { .. })
    }

    /// The body for the next attempt; a streaming body goes to the first attempt only
    /// (later calls get what remains: nothing).
    pub fn next(&mut self) -> Body {
        match self {
            RequestBody::Empty => boxed(Replayed::new(Bytes::new(), None)),
            RequestBody::Buffered { data, trailers } => {
                boxed(Replayed::new(data.clone(), trailers.clone()))
            }
            RequestBody::Streaming { read, rest } => {
                let first = std::mem::take(read);
                match rest.take() {
                    Some(rest) if first.is_empty() => boxed(rest),
                    Some(rest) => boxed(Prefixed {
                        first: Some(first),
                        rest,
                    }),
                    None => boxed(Replayed::new(first, None)),
                }
            }
        }
    }
}

/// A kept body, sent again: its data in one frame, then its trailers.
struct Replayed {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
}

impl Replayed {
    fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let len = data.len() as u64;
        Self {
            data: Some(data).filter(|d| !d.is_empty()),
            trailers,
            len,
        }
    }
}

impl hyper::body::Body for Replayed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.trailers.is_some() {
            return SizeHint::default();
        }
        SizeHint::with_exact(self.data.as_ref().map_or(0, |_| self.len))
    }
}

/// What was read of a body too long to keep, then the rest of it.
struct Prefixed {
    first: Option<Bytes>,
    rest: Incoming,
}

impl hyper::body::Body for Prefixed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A response body watched by the request's timeouts: past the route's deadline, or once
/// nothing has come for the stream idle timeout, the stream is broken off with an error
/// (the headers have gone out, so there is no 504 to send), as Envoy resets it.
pub struct Watched {
    inner: Body,
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<Duration>,
    /// Armed only while the body waits (most bodies never do: no timer for them).
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    pub fn wrap(inner: Body, deadline: Option<Instant>, idle: Option<Duration>) -> Body {
        Watched {
            inner,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            idle,
            idle_timer: None,
        }
        .boxed()
    }
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            // Activity: the idle clock starts again when the body next waits.
            self.idle_timer = None;
            return Poll::Ready(frame);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err("UT: upstream request timeout".into())));
        }
        if let Some(idle) = self.idle {
            let timer = self
                .idle_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err("SI: stream timeout".into())));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
