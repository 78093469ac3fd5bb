"""The environment stream processor (faust-streaming): rolling means, AQI and threshold alerts."""
