"""Recipes: the stage runner (`branchmerge run`) and the offline demo."""
