import Link from "next/link";

export default function NotFound() {
  return (
    <div className="content">
      <div className="alert warn" role="alert">
        <h2>Not found</h2>
        <p>There is no such page in the dashboard.</p>
        <p>
          <Link href="/">Back to the overview</Link>
        </p>
      </div>
    </div>
  );
}
