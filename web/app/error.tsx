"use client";

// The last resort when a page fails in a way no API problem explains: a plain message and the
// digest the server log repeats, never the error's text or stack (they may carry details).
export default function ErrorPage({ error, reset }: { error: Error & { digest?: string }; reset: () => void }) {
  return (
    <div className="content">
      <div className="alert bad" role="alert" data-testid="page-error">
        <h2>This page could not be shown</h2>
        <p>Something failed in the dashboard while rendering it. Try again; if it keeps failing, the server log has the details.</p>
        {error.digest ? <div className="meta">digest {error.digest}</div> : null}
        <p style={{ marginTop: 10 }}>
          <button type="button" onClick={() => reset()}>
            Try again
          </button>{" "}
          <a href="/" className="button secondary">
            Overview
          </a>
        </p>
      </div>
    </div>
  );
}
