//! Marshalling: requests and responses to bytes and back.
//!
//! Every integer travels in *network byte order*, big-endian: the most
//! significant byte first. The length 17 is sent as `00 00 00 11`. A program
//! that sent its memory as is from a little-endian machine (x86, ARM) would
//! send `11 00 00 00`, which the receiver reads as 285 212 672: that is what
//! `htonl`/`ntohl` are for in C, and `to_be_bytes`/`from_be_bytes` here.
//!
//! These functions deal with frame *bodies*; the 4-byte length in front of
//! each body is the business of [`super::frame`].

/// Length of a request body: opcode (1) + a (8) + b (8).
pub const REQUEST_LEN: usize = 17;
/// Length of a response body: status (1) + result (8).
pub const RESPONSE_LEN: usize = 9;

/// An operation, with its opcode on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add = 1,
    Sub = 2,
    Mul = 3,
    Div = 4,
}

impl Op {
    /// The operation with this opcode, if there is one.
    pub fn from_code(code: u8) -> Option<Op> {
        match code {
            1 => Some(Op::Add),
            2 => Some(Op::Sub),
            3 => Some(Op::Mul),
            4 => Some(Op::Div),
            _ => None,
        }
    }

    /// The operation a client writes as `add`, `sub`, `mul` or `div`.
    pub fn from_name(name: &str) -> Option<Op> {
        match name {
            "add" => Some(Op::Add),
            "sub" => Some(Op::Sub),
            "mul" => Some(Op::Mul),
            "div" => Some(Op::Div),
            _ => None,
        }
    }
}

/// A request: compute `a op b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub a: i64,
    pub b: i64,
}

impl Request {
    /// The 17-byte body: opcode, then `a` and `b` big-endian.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut body = [0u8; REQUEST_LEN];
        body[0] = self.op as u8;
        body[1..9].copy_from_slice(&self.a.to_be_bytes());
        body[9..17].copy_from_slice(&self.b.to_be_bytes());
        body
    }

    /// Reads a request body; `None` if it is not 17 bytes long or if its
    /// opcode is unknown (both are answered with status 2).
    pub fn decode(body: &[u8]) -> Option<Request> {
        if body.len() != REQUEST_LEN {
            return None;
        }
        let op = Op::from_code(body[0])?;
        let a = i64::from_be_bytes(body[1..9].try_into().unwrap());
        let b = i64::from_be_bytes(body[9..17].try_into().unwrap());
        Some(Request { op, a, b })
    }
}

/// A response: a status, with the result when the status is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Status 0 and the result.
    Ok(i64),
    /// Status 1 (result 0).
    DivisionByZero,
    /// Status 2 (result 0): a length other than 17, or an unknown opcode.
    BadRequest,
}

impl Response {
    /// The 9-byte body: status, then the result big-endian (0 on error).
    pub fn encode(&self) -> [u8; RESPONSE_LEN] {
        let (status, result) = match *self {
            Response::Ok(result) => (0, result),
            Response::DivisionByZero => (1, 0),
            Response::BadRequest => (2, 0),
        };
        let mut body = [0u8; RESPONSE_LEN];
        body[0] = status;
        body[1..9].copy_from_slice(&result.to_be_bytes());
        body
    }

    /// Reads a response body; `None` if it is not 9 bytes long or if its
    /// status is not 0, 1 or 2.
    pub fn decode(body: &[u8]) -> Option<Response> {
        if body.len() != RESPONSE_LEN {
            return None;
        }
        let result = i64::from_be_bytes(body[1..9].try_into().unwrap());
        match body[0] {
            0 => Some(Response::Ok(result)),
            1 => Some(Response::DivisionByZero),
            2 => Some(Response::BadRequest),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_big_endian() {
        let r = Request {
            op: Op::Sub,
            a: 0x0102_0304_0506_0708,
            b: -2,
        };
        let body = r.encode();
        assert_eq!(
            body,
            [2, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(Request::decode(&body), Some(r));
        let mut bad = body;
        bad[0] = 5;
        assert_eq!(Request::decode(&bad), None);
        assert_eq!(Request::decode(&body[..16]), None);
    }

    #[test]
    fn response_is_big_endian() {
        let body = Response::Ok(258).encode();
        assert_eq!(body, [0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(Response::decode(&body), Some(Response::Ok(258)));
        assert_eq!(Response::BadRequest.encode(), [2, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Response::decode(&[7, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Response::decode(&[0; 10]), None);
    }
}
