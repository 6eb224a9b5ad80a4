//! The price table: cost of a model call from its model name and token counts.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::span::TokenUsage;

const BUILTIN_PRICES: &str = include_str!("../data/prices.json");

/// Price of one model in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ModelPrice {
    /// USD per 1M prompt (input) tokens.
    pub input: f64,
    /// USD per 1M completion (output) tokens.
    pub output: f64,
}

/// Why a price file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    /// The text is not a JSON object of `{"model": {"input": n, "output": n}}`.
    #[error("invalid price table: {0}")]
    Invalid(#[from] serde_json::Error),
    /// A price is negative or not finite.
    #[error("invalid price for model {model:?}: prices must be finite and not negative")]
    BadPrice {
        /// The model whose price is wrong.
        model: String,
    },
}

/// Model name prefix → price, matched by longest prefix so dated variants
/// (`gpt-4o-mini-2024-07-18`) find their family.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// The table compiled into the binary.
    pub fn builtin() -> Self {
        // The builtin file is checked by a unit test, so failing here would be a build defect.
        match Self::parse(BUILTIN_PRICES) {
            Ok(table) => table,
            Err(_) => Self {
                prices: BTreeMap::new(),
            },
        }
    }

    /// Parses a table from JSON text: `{"model-prefix": {"input": usd_per_1m, "output": usd_per_1m}}`.
    /// Keys starting with `_` are comments.
    pub fn parse(json: &str) -> Result<Self, PriceTableError> {
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)?;
        let mut prices = BTreeMap::new();
        for (model, value) in raw {
            if model.starts_with('_') {
                continue;
            }
            let price: ModelPrice = serde_json::from_value(value)?;
            if !(price.input.is_finite() && price.output.is_finite())
                || price.input < 0.0
                || price.output < 0.0
            {
                return Err(PriceTableError::BadPrice { model });
            }
            prices.insert(model.to_ascii_lowercase(), price);
        }
        Ok(Self { prices })
    }

    /// Adds or replaces the entries of `overrides` (an operator's price file) in this table.
    pub fn extend_with(&mut self, overrides: PriceTable) {
        self.prices.extend(overrides.prices);
    }

    /// Number of models priced.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Whether no model is priced.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// The price of a model, by longest matching prefix, ignoring a `provider/` prefix and case.
    pub fn price_of(&self, model: &str) -> Option<ModelPrice> {
        let lowered = model.trim().to_ascii_lowercase();
        let name = lowered.rsplit('/').next().unwrap_or(&lowered);
        // Walk back through shorter prefixes; the table is small, so this is cheap and exact.
        let mut end = name.len();
        loop {
            let candidate = &name[..end];
            if let Some(price) = self.prices.get(candidate) {
                return Some(*price);
            }
            end = candidate.char_indices().last().map(|(index, _)| index)?;
            if end == 0 {
                return None;
            }
        }
    }

    /// Cost in USD of a call, `None` when the model is unknown or no token count is known.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Option<f64> {
        if usage.prompt_tokens.is_none() && usage.completion_tokens.is_none() {
            return None;
        }
        let price = self.price_of(model)?;
        let prompt = usage.prompt_tokens.unwrap_or(0) as f64;
        let completion = usage.completion_tokens.unwrap_or(0) as f64;
        Some((prompt * price.input + completion * price.output) / 1e6)
    }
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> TokenUsage {
        TokenUsage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
        }
    }

    #[test]
    fn builtin_table_parses_and_matches_the_vendor_sample_costs() {
        let table = PriceTable::parse(BUILTIN_PRICES).map_err(|e| e.to_string());
        assert!(table.as_ref().is_ok_and(|t| t.len() > 30), "{table:?}");
        let table = PriceTable::builtin();
        // The sample fixture's own cost values for these calls.
        let cost = table.cost("gpt-3.5-turbo", &usage(15, 10)).unwrap_or(-1.0);
        assert!((cost - 2.25e-5).abs() < 1e-12, "{cost}");
        let cost = table.cost("gpt-4o-mini", &usage(25, 19)).unwrap_or(-1.0);
        assert!((cost - 1.515e-5).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn longest_prefix_and_provider_prefix_match() {
        let table = PriceTable::builtin();
        assert_eq!(
            table.price_of("gpt-4o-mini-2024-07-18").map(|p| p.input),
            Some(0.15)
        );
        assert_eq!(
            table.price_of("gpt-4o-2024-08-06").map(|p| p.input),
            Some(2.5)
        );
        assert_eq!(table.price_of("openai/GPT-4o").map(|p| p.input), Some(2.5));
        assert_eq!(table.price_of("my-local-model"), None);
        assert_eq!(table.cost("gpt-4o", &TokenUsage::default()), None);
    }

    #[test]
    fn operator_file_overrides_and_extends() {
        let mut table = PriceTable::builtin();
        let overrides = PriceTable::parse(
            r#"{"gpt-4o": {"input": 1.0, "output": 2.0}, "acme-1": {"input": 3.0, "output": 4.0}}"#,
        );
        assert!(overrides.is_ok());
        if let Ok(overrides) = overrides {
            table.extend_with(overrides);
        }
        assert_eq!(
            table.price_of("gpt-4o"),
            Some(ModelPrice {
                input: 1.0,
                output: 2.0
            })
        );
        let cost = table
            .cost("acme-1", &usage(1_000_000, 1_000_000))
            .unwrap_or(-1.0);
        assert!((cost - 7.0).abs() < 1e-9);
        assert!(matches!(
            PriceTable::parse(r#"{"x": {"input": -1, "output": 0}}"#),
            Err(PriceTableError::BadPrice { .. })
        ));
        assert!(matches!(
            PriceTable::parse("[1]"),
            Err(PriceTableError::Invalid(_))
        ));
    }
}
