//! REST: the polls of types an exchange only serves that way, and the one GET both polls and
//! order book snapshots use, which obeys the exchange's rate limiting (429, and Binance's 418
//! ban) by waiting as long as `Retry-After` says.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::feed::{Poll, PollContext};
use super::stats::FeedStats;
use crate::pipeline::message::MarketMessage;
use crate::pipeline::source::synthetic::now_ms;

/// Longest wait a rate-limit answer can impose before the next try.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A GET that failed: what to say, and how long the exchange asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub what: String,
    pub retry_after: Option<Duration>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("mp-remote-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// GETs `url`; a non-2xx answer is an error naming the status and the start of the body.
pub async fn get(client: &reqwest::Client, url: &str) -> Result<String, Failed> {
    let fail = |what: String| Failed {
        what,
        retry_after: None,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(format!("GET {url}: {e}")))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    let body = response
        .text()
        .await
        .map_err(|e| fail(format!("GET {url}: reading the answer: {e}")))?;
    if status.is_success() {
        return Ok(body);
    }
    let limited = status.as_u16() == 429 || status.as_u16() == 418;
    let what = match status.as_u16() {
        429 => "rate limited (429): waiting as the exchange asks",
        418 => "IP banned for ignoring rate limits (418): waiting as the exchange asks",
        _ => "refused",
    };
    Err(Failed {
        what: format!("GET {url}: {status} {what}: {}", excerpt(&body)),
        retry_after: if limited {
            Some(retry_after.unwrap_or(Duration::from_secs(60)))
        } else {
            None
        },
    })
}

/// The first 200 characters of an answer, on one line, for an error message.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.trim().to_string()
}

/// Polls until the collector goes away.
pub async fn run(poll: Poll, tx: mpsc::Sender<MarketMessage>, stats: Arc<FeedStats>) {
    stats.attach_poll(&poll.stream, poll.every);
    let client = client();
    loop {
        let mut wait = poll.every;
        match get(&client, &poll.url).await {
            Ok(body) => {
                let context = PollContext {
                    now_ms: now_ms(),
                    ..poll.context.clone()
                };
                match (poll.parse)(&body, &context) {
                    Ok(messages) if messages.is_empty() => {
                        stats.poll_failed(&poll.stream, "the answer held no data");
                    }
                    Ok(messages) => {
                        for message in messages {
                            stats.message(&poll.stream);
                            if tx.send(message).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let what = format!("{}: {e}: {}", poll.url, excerpt(&body));
                        tracing::warn!("{}: unusable answer: {what}", poll.stream);
                        stats.poll_failed(&poll.stream, &what);
                    }
                }
            }
            Err(failed) => {
                tracing::warn!("{}: {}", poll.stream, failed.what);
                stats.poll_failed(&poll.stream, &failed.what);
                if let Some(after) = failed.retry_after {
                    wait = wait.max(after);
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback answering `response` to the first request.
    async fn answer_once(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/fapi/v1/depth", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(response.as_bytes()).await;
        });
        url
    }

    #[tokio::test]
    async fn a_rate_limit_answer_says_how_long_to_wait() {
        let url = answer_once(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 24\r\nConnection: close\r\n\r\n{\"code\":-1003,\"msg\":\"x\"}",
        )
        .await;
        let failed = get(&client(), &url).await.unwrap_err();
        assert_eq!(failed.retry_after, Some(Duration::from_secs(7)));
        assert!(failed.what.contains("429"), "{}", failed.what);
        assert!(failed.what.contains("-1003"), "{}", failed.what);
    }

    #[tokio::test]
    async fn a_ban_without_retry_after_waits_a_minute_and_other_errors_not_at_all() {
        let url = answer_once(
            "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await;
        let failed = get(&client(), &url).await.unwrap_err();
        assert_eq!(failed.retry_after, Some(Duration::from_secs(60)));
        assert!(failed.what.contains("banned"), "{}", failed.what);
        let url = answer_once(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 39\r\nConnection: close\r\n\r\n{\"code\":-1121,\"msg\":\"Invalid symbol.\"}  ",
        )
        .await;
        let failed = get(&client(), &url).await.unwrap_err();
        assert_eq!(failed.retry_after, None);
        assert!(failed.what.contains("Invalid symbol"), "{}", failed.what);
    }
}
