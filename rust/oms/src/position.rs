//! Net positions from fills: signed quantity, average entry price, realised P&L.

/// Buy or sell, as it changes a position.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FillSide {
    /// Adds to a long or reduces a short.
    Buy,
    /// Reduces a long or adds to a short.
    Sell,
}

/// A net position in one instrument (and account).
///
/// `cost` is the open quantity times its average price, in
/// price-mantissa x size-mantissa units; `realized` is realised P&L in the
/// same units (divide by 10^(price_scale + size_scale) for money).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Signed quantity: positive long, negative short.
    pub quantity: i64,
    /// Signed cost of the open quantity.
    pub cost: i128,
    /// Realised P&L.
    pub realized: i128,
}

impl Position {
    /// Applies one fill of `quantity` (positive) at `price`.
    ///
    /// A fill that reduces the position realises P&L against the average
    /// price; one that crosses through zero closes the old side and opens
    /// the rest at the fill price.
    pub fn apply_fill(&mut self, side: FillSide, quantity: i64, price: i64) {
        let signed = match side {
            FillSide::Buy => i128::from(quantity),
            FillSide::Sell => -i128::from(quantity),
        };
        let open = i128::from(self.quantity);
        let px = i128::from(price);
        if open == 0 || open.signum() == signed.signum() {
            self.cost += signed * px;
        } else {
            let closing = signed.abs().min(open.abs());
            // Average price of the open quantity, exactly: cost / open.
            let closed_cost = self.cost * closing / open.abs();
            let proceeds = px * closing * open.signum();
            self.realized += proceeds - closed_cost;
            self.cost -= closed_cost;
            let rest = signed.abs() - closing;
            if rest > 0 {
                self.cost = signed.signum() * rest * px;
            }
        }
        // Quantities are i64 mantissas; the sum of two stays in range for
        // any position a venue would allow, and saturates otherwise.
        self.quantity =
            i64::try_from(open + signed).unwrap_or(if signed > 0 { i64::MAX } else { i64::MIN });
        if self.quantity == 0 {
            self.cost = 0;
        }
    }

    /// Returns the average entry price of the open quantity (truncated to
    /// the price scale), or None when flat.
    #[must_use]
    pub fn average_price(&self) -> Option<i64> {
        if self.quantity == 0 {
            return None;
        }
        i64::try_from(self.cost / i128::from(self.quantity)).ok()
    }

    /// Returns unrealised P&L at `mark` (same units as `realized`).
    #[must_use]
    pub fn unrealized(&self, mark: i64) -> i128 {
        i128::from(self.quantity) * i128::from(mark) - self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_and_realises() {
        let mut p = Position::default();
        p.apply_fill(FillSide::Buy, 100, 10_000);
        p.apply_fill(FillSide::Buy, 100, 10_200);
        assert_eq!(p.quantity, 200);
        assert_eq!(p.average_price(), Some(10_100));
        p.apply_fill(FillSide::Sell, 50, 10_300);
        assert_eq!(p.quantity, 150);
        assert_eq!(p.realized, 50 * 200);
        assert_eq!(p.average_price(), Some(10_100));
        assert_eq!(p.unrealized(10_000), 150 * -100);
    }

    #[test]
    fn crossing_zero_opens_the_other_side_at_the_fill_price() {
        let mut p = Position::default();
        p.apply_fill(FillSide::Buy, 10, 100);
        p.apply_fill(FillSide::Sell, 25, 110);
        assert_eq!(p.quantity, -15);
        assert_eq!(p.realized, 10 * 10);
        assert_eq!(p.average_price(), Some(110));
        p.apply_fill(FillSide::Buy, 15, 100);
        assert_eq!(p.quantity, 0);
        assert_eq!(p.realized, 100 + 15 * 10);
        assert_eq!(p.average_price(), None);
        assert_eq!(p.cost, 0);
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn pnl_is_conserved(fills in proptest::collection::vec((any::<bool>(), 1i64..1_000, 1i64..100_000), 1..60), mark in 1i64..100_000) {
            // Total P&L (realised + unrealised at the mark) equals the cash
            // flows of the fills valued at the mark, whatever the order.
            let mut p = Position::default();
            let mut cash: i128 = 0;
            for (buy, qty, px) in &fills {
                let side = if *buy { FillSide::Buy } else { FillSide::Sell };
                p.apply_fill(side, *qty, *px);
                cash += if *buy { -i128::from(*qty) * i128::from(*px) } else { i128::from(*qty) * i128::from(*px) };
            }
            let total = p.realized + p.unrealized(mark);
            let expected = cash + i128::from(p.quantity) * i128::from(mark);
            // Integer division in partial closes may leave a remainder of
            // at most one unit per fill.
            prop_assert!((total - expected).abs() <= fills.len() as i128);
        }
    }
}
