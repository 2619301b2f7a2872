//! The calculator: 64-bit two's-complement arithmetic that wraps on overflow.

use super::message::Op;

/// The one arithmetic error: dividing by zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivisionByZero;

/// Computes `a op b` the way the lab asks.
///
/// - Overflow wraps around (`i64::MAX + 1 == i64::MIN`), as the hardware
///   does. Rust's plain `+` would panic on overflow in a debug build, so we
///   say what we mean with `wrapping_*`.
/// - Division truncates toward zero: `-7 / 2 == -3`, `7 / -2 == -3`.
/// - `i64::MIN / -1` is the one division that overflows (the true result,
///   2^63, does not fit); it wraps to `i64::MIN`. Beware in C: there it is
///   undefined behaviour, and on x86 the CPU raises SIGFPE, which kills the
///   server unless you test for this case first.
/// - Division by zero is an error, answered with status 1.
pub fn compute(op: Op, a: i64, b: i64) -> Result<i64, DivisionByZero> {
    match op {
        Op::Add => Ok(a.wrapping_add(b)),
        Op::Sub => Ok(a.wrapping_sub(b)),
        Op::Mul => Ok(a.wrapping_mul(b)),
        Op::Div if b == 0 => Err(DivisionByZero),
        Op::Div => Ok(a.wrapping_div(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_truncates() {
        assert_eq!(compute(Op::Add, i64::MAX, 1), Ok(i64::MIN));
        assert_eq!(compute(Op::Sub, i64::MIN, 1), Ok(i64::MAX));
        assert_eq!(compute(Op::Mul, i64::MAX, 2), Ok(-2));
        assert_eq!(compute(Op::Div, -7, 2), Ok(-3));
        assert_eq!(compute(Op::Div, 7, -2), Ok(-3));
        assert_eq!(compute(Op::Div, i64::MIN, -1), Ok(i64::MIN));
        assert_eq!(compute(Op::Div, 1, 0), Err(DivisionByZero));
    }
}
