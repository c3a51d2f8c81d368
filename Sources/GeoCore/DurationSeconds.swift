// One conversion of a Duration to fractional seconds, for figures that are reported as numbers
// (latencies, uptimes, rates). A value conversion only: GeoCore still reads no clock.

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
