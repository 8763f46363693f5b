"""The LLM news service: ingestion, entities, sentiment and impact."""
