//! The bytes of a response head, and the small pages that explain an error.
//!
//! A response head is text: a status line, header fields, an empty line.
//! The body that follows is framed by `Content-Length`, which we give on
//! every response, errors included: it is what lets the client find the end
//! of this response, and so the start of the next one on a kept-alive
//! connection.

use std::time::SystemTime;

use super::date::http_date;

/// A status code and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
}

pub const OK: Status = Status {
    code: 200,
    reason: "OK",
};
pub const BAD_REQUEST: Status = Status {
    code: 400,
    reason: "Bad Request",
};
pub const FORBIDDEN: Status = Status {
    code: 403,
    reason: "Forbidden",
};
pub const NOT_FOUND: Status = Status {
    code: 404,
    reason: "Not Found",
};
pub const HEADER_FIELDS_TOO_LARGE: Status = Status {
    code: 431,
    reason: "Request Header Fields Too Large",
};
pub const INTERNAL_SERVER_ERROR: Status = Status {
    code: 500,
    reason: "Internal Server Error",
};
pub const NOT_IMPLEMENTED: Status = Status {
    code: 501,
    reason: "Not Implemented",
};

/// The head of a response: status line, `Date`, `Content-Type`,
/// `Content-Length`, `Connection`, and the empty line that ends the head.
///
/// `content_length` is the length of the body a `GET` gets, also when the
/// body is not sent (a `HEAD` request): RFC 9110 asks `HEAD` to get the same
/// header fields as `GET`.
pub fn head(status: Status, content_type: &str, content_length: u64, keep_alive: bool) -> Vec<u8> {
    // We always answer as HTTP/1.1, also to an HTTP/1.0 client: the version
    // says what we are able to speak, and a 1.0 client understands the rest.
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {} {}\r\n\
         Date: {}\r\n\
         Server: sockgrade-httpd\r\n\
         Content-Type: {}\r\n\
         Content-Length: {}\r\n\
         Connection: {}\r\n\
         \r\n",
        status.code,
        status.reason,
        http_date(SystemTime::now()),
        content_type,
        content_length,
        connection
    )
    .into_bytes()
}

/// A short HTML page that says what went wrong, e.g. for `404 Not Found`.
pub fn error_page(status: Status) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n\
         <html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1></body></html>\n",
        code = status.code,
        reason = status.reason
    )
    .into_bytes()
}

/// A whole error response: head and (unless `send_body` is false, for
/// `HEAD`) the page, in one buffer so that it leaves in one write.
pub fn error(status: Status, keep_alive: bool, send_body: bool) -> Vec<u8> {
    let page = error_page(status);
    let mut bytes = head(status, "text/html", page.len() as u64, keep_alive);
    if send_body {
        bytes.extend_from_slice(&page);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_has_exact_length() {
        let bytes = error(NOT_FOUND, false, true);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(head.ends_with("Connection: close"));
    }
}
