import type { NextConfig } from "next";

// The dashboard is a server-rendered client of the OpenFuse API: every API call happens on the
// server with the operator's key from an httpOnly cookie, so the browser needs no API origin and
// nothing here is public configuration (OPENFUSE_API_URL is read at request time).
const nextConfig: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  async headers() {
    return [
      {
        source: "/:path*",
        headers: [
          { key: "X-Content-Type-Options", value: "nosniff" },
          { key: "Referrer-Policy", value: "same-origin" },
          { key: "X-Frame-Options", value: "DENY" },
          { key: "Content-Security-Policy", value: "frame-ancestors 'none'; base-uri 'self'; form-action 'self'" },
        ],
      },
    ];
  },
};

export default nextConfig;
