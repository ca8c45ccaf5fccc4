"""Forms patients answer from LINE (問診票, アンケート, 予防接種の希望) and what their answers write."""
