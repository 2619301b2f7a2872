//! Lab "rpc": a remote calculator. It teaches the two things a byte stream
//! does not do for you.
//!
//! - **Framing** ([`frame`]): TCP delivers bytes, not messages. One `read` may
//!   return half a request, or three requests and a bit. So every message is
//!   a *frame*: a 4-byte length `L`, then `L` bytes of body, and the receiver
//!   keeps the bytes it has in a buffer until a whole frame is there.
//! - **Marshalling** ([`message`]): turning a request (`add 2 3`) into bytes
//!   and back, with integers in *network byte order* (big-endian), so that
//!   machines that store integers differently in memory agree on the wire.
//!
//! [`arith`] is the calculator itself, [`server`] and [`client`] the two
//! programs `rpcserver PORT` and `rpcclient HOST PORT`.
//!
//! Wire format, either way:
//!
//! ```text
//! request : L = 17 (u32 BE) | opcode (u8: 1 add, 2 sub, 3 mul, 4 div) | a (i64 BE) | b (i64 BE)
//! response: L = 9  (u32 BE) | status (u8: 0 ok, 1 division by zero, 2 bad request) | result (i64 BE)
//! ```

pub mod arith;
pub mod client;
pub mod frame;
pub mod message;
pub mod server;
