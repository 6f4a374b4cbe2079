CREATE TABLE "staged_embeddings" (
	"gallery_id" bigint NOT NULL,
	"face_id" bigint NOT NULL,
	"model_id" text NOT NULL,
	"embedding" vector NOT NULL,
	CONSTRAINT "staged_embeddings_gallery_id_face_id_pk" PRIMARY KEY("gallery_id","face_id")
);
--> statement-breakpoint
ALTER TABLE "galleries" ADD COLUMN "generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "galleries" ADD COLUMN "migration" jsonb;--> statement-breakpoint
ALTER TABLE "staged_embeddings" ADD CONSTRAINT "staged_embeddings_gallery_id_galleries_id_fk" FOREIGN KEY ("gallery_id") REFERENCES "public"."galleries"("id") ON DELETE cascade ON UPDATE no action;