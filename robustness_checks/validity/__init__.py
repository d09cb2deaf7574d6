"""Decision and gate validity: populations with known values that every check type declares."""
