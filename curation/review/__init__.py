"""What a person looks at: samples chosen by a rule, a recipe's flags or a query, drawn with their label and the
policy's answers (``vlmr1 review``), and the same rollouts and labels as COCO files for the field's tools."""
