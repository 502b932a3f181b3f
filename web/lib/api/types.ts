// Short names for the API's models (generated into schema.d.ts from api/openapi.snapshot.json).
import type { components } from "./schema";

type Schemas = components["schemas"];

export type Principal = Schemas["PrincipalPublic"];
export type License = Schemas["LicensePublic"];
export type Features = Schemas["FeaturesPublic"];
export type Connection = Schemas["ConnectionPublic"];
export type Pipeline = Schemas["PipelinePublic"];
export type StreamSpec = Schemas["StreamSpec"];
export type CurrentStreamState = Schemas["CurrentStreamState"];
export type RunSummary = Schemas["RunSummary"];
export type Run = Schemas["RunPublic"];
export type RunStatus = Schemas["RunStatus"];
export type StepResult = Schemas["StepResult"];
export type AuditEntry = Schemas["AuditLogPublic"];
export type Outcome = Schemas["Outcome"];
export type PolicyVersion = Schemas["PolicyVersionPublic"];
export type PolicyExplanation = Schemas["PolicyExplanation"];
export type FieldError = Schemas["FieldError"];
export type ProblemDocument = Schemas["ProblemPublic"];
export type PolicyDiagnostic = Schemas["PolicyDiagnostic"];

/** The license features the dashboard gates routes on (the keys of `GET /features`). */
export type FeatureName = "abac" | "masking" | "audit_export";
