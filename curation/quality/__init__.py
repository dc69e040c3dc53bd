"""Annotation-quality rules as versioned SQL recipes over the catalog (features, rules, recipes, funnel)."""
