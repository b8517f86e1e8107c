// The Probot twin of sample_bots/labeler.py, for the bench only: every newly
// opened issue gets the label needs-response.

/** @param {import("probot").Probot} app */
export default function labeler(app) {
  app.on("issues.opened", async (context) => {
    // Probot 14's Octokit has the REST methods under .rest only (its README's
    // context.octokit.issues.* throws "Cannot read properties of undefined").
    await context.octokit.rest.issues.addLabels(
      context.issue({ labels: ["needs-response"] }),
    );
  });
}
