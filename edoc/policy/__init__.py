"""What the law asks, as data and rules: profiles, retention, calendar, capture rules, roles."""
