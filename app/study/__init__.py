"""Study commands' logic: the inspector's rendering and the evaluation."""
